//! Hash multimaps on disk, for dedup indexes that outgrow their memory
//! share (`[dedup] index_memory_mib`).
//!
//! A dedup index keeps its newest entries in memory and moves them here in
//! one batch when they fill their share, so memory stays flat however long
//! the run. [`DiskChains`] numbers entries in insertion order. Each entry
//! has `width` 32-bit keys (one per LSH band for near-dedup, one for exact
//! dedup) and a fixed-size payload. For every key position `c` there is a
//! table of chain heads (`heads-c.bin`, one `u32` per slot: the newest
//! entry whose key `c` falls in that slot, plus one; 0 is empty), and every
//! entry records, per position, its key and the next older entry of the
//! same slot (`links.bin`). Payloads live in `payload.bin`.
//!
//! Lookups are positioned reads (`pread`): the data stays in the kernel's
//! page cache, which it can reclaim, not in the process. A fixed-size bit
//! filter over (position, key) answers most lookups of keys never seen
//! without touching the files. Batches are written a head table at a time:
//! the batch's updates of one table are sorted by slot and applied to
//! ranges of the table read into memory, so a batch costs a few sequential
//! passes instead of a random write per key. The tables double when the
//! entries outnumber the slots, keeping chains about one entry long.
//!
//! The files are a derived index, not a record: foil rebuilds them from the
//! run state when a run starts, so they need no fsync and no crash
//! protocol of their own.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Slots per key position of a new index.
const INITIAL_SLOTS_LOG2: u32 = 16;
/// Most bytes of a head table held in memory at once.
const RANGE_BYTES: usize = 64 << 20;
/// Bytes read or written at a time while doubling or writing payloads.
const CHUNK: usize = 4 << 20;

pub struct DiskChains {
    dir: PathBuf,
    width: usize,
    payload_len: usize,
    slots_log2: u32,
    len: u32,
    heads: Vec<File>,
    links: File,
    payload: File,
    /// One bit per hashed (position, key): set for every key stored.
    filter: Vec<u64>,
    filter_mask: u64,
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

impl DiskChains {
    /// An empty index in `dir` (created; files of an earlier index there
    /// are replaced), with a filter of `filter_bytes` (rounded down to a
    /// power of two).
    pub fn create(
        dir: &Path,
        width: usize,
        payload_len: usize,
        filter_bytes: usize,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let slots_log2 = INITIAL_SLOTS_LOG2;
        let mut heads = Vec::with_capacity(width);
        for c in 0..width {
            let f = open_rw(&dir.join(format!("heads-{c}.bin")))?;
            f.set_len(4 << slots_log2)?;
            heads.push(f);
        }
        let words = (filter_bytes / 8).max(1);
        let words = 1usize << (usize::BITS - 1 - words.leading_zeros());
        Ok(DiskChains {
            dir: dir.to_path_buf(),
            width,
            payload_len,
            slots_log2,
            len: 0,
            heads,
            links: open_rw(&dir.join("links.bin"))?,
            payload: open_rw(&dir.join("payload.bin"))?,
            filter: vec![0; words],
            filter_mask: (words as u64 * 64) - 1,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn slots(&self) -> usize {
        1 << self.slots_log2
    }

    fn slot(&self, key: u32) -> usize {
        key as usize & (self.slots() - 1)
    }

    fn filter_bit(&self, c: usize, key: u32) -> u64 {
        let x = (u64::from(key) ^ ((c as u64) << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (x ^ (x >> 29)) & self.filter_mask
    }

    /// Append `n` entries: `keys` holds `width` keys per entry, and
    /// `payload(i, buf)` appends entry `i`'s payload to `buf`.
    pub fn push_batch(
        &mut self,
        n: usize,
        keys: &[u32],
        payload: impl Fn(usize, &mut Vec<u8>),
    ) -> io::Result<()> {
        debug_assert_eq!(keys.len(), n * self.width);
        if n == 0 {
            return Ok(());
        }
        if u64::from(self.len) + n as u64 > u64::from(u32::MAX - 1) {
            return Err(io::Error::other("dedup index full (4 billion entries)"));
        }
        while self.len as usize + n > self.slots() {
            self.grow()?;
        }
        // Payloads, a chunk at a time.
        let mut buf = Vec::with_capacity(CHUNK + self.payload_len);
        let mut at = u64::from(self.len) * self.payload_len as u64;
        for i in 0..n {
            payload(i, &mut buf);
            if buf.len() >= CHUNK || i + 1 == n {
                self.payload.write_all_at(&buf, at)?;
                at += buf.len() as u64;
                buf.clear();
            }
        }
        // Chains: one head table at a time.
        let mut links = vec![0u8; n * self.width * 8];
        let range = (RANGE_BYTES / 4).min(self.slots());
        let mut heads = Vec::new();
        for c in 0..self.width {
            let mut ups: Vec<(u32, u32)> = (0..n)
                .map(|i| (self.slot(keys[i * self.width + c]) as u32, i as u32))
                .collect();
            ups.sort_unstable();
            let mut rest = &ups[..];
            while let Some(&(first, _)) = rest.first() {
                let start = first as usize / range * range;
                let count = rest.partition_point(|&(s, _)| (s as usize) < start + range);
                let (mine, more) = rest.split_at(count);
                rest = more;
                // Few updates in a big range: one read and write per slot.
                let sparse = mine.len() * 1024 < range;
                if !sparse {
                    heads.resize(range * 4, 0);
                    self.heads[c].read_exact_at(&mut heads, start as u64 * 4)?;
                }
                for &(slot, i) in mine {
                    let o = (slot as usize - start) * 4;
                    let mut head = [0u8; 4];
                    if sparse {
                        self.heads[c].read_exact_at(&mut head, slot as u64 * 4)?;
                    } else {
                        head.copy_from_slice(&heads[o..o + 4]);
                    }
                    let key = keys[i as usize * self.width + c];
                    let l = (i as usize * self.width + c) * 8;
                    links[l..l + 4].copy_from_slice(&key.to_le_bytes());
                    links[l + 4..l + 8].copy_from_slice(&head);
                    let id = (self.len + i + 1).to_le_bytes();
                    if sparse {
                        self.heads[c].write_all_at(&id, slot as u64 * 4)?;
                    } else {
                        heads[o..o + 4].copy_from_slice(&id);
                    }
                    let bit = self.filter_bit(c, key);
                    self.filter[(bit / 64) as usize] |= 1 << (bit % 64);
                }
                if !sparse {
                    self.heads[c].write_all_at(&heads, start as u64 * 4)?;
                }
            }
        }
        self.links
            .write_all_at(&links, u64::from(self.len) * self.width as u64 * 8)?;
        self.len += n as u32;
        Ok(())
    }

    /// The entries whose key at position `c` is `key`, newest first.
    pub fn find(&self, c: usize, key: u32, out: &mut Vec<u32>) -> io::Result<()> {
        let bit = self.filter_bit(c, key);
        if self.filter[(bit / 64) as usize] & (1 << (bit % 64)) == 0 {
            return Ok(());
        }
        let mut head = [0u8; 4];
        self.heads[c].read_exact_at(&mut head, self.slot(key) as u64 * 4)?;
        let mut next = le32(&head);
        let mut link = [0u8; 8];
        while next != 0 {
            let id = next - 1;
            self.links.read_exact_at(
                &mut link,
                (u64::from(id) * self.width as u64 + c as u64) * 8,
            )?;
            if le32(&link) == key {
                out.push(id);
            }
            next = le32(&link[4..]);
        }
        Ok(())
    }

    /// An entry's payload.
    pub fn payload(&self, id: u32, buf: &mut [u8]) -> io::Result<()> {
        self.payload
            .read_exact_at(buf, u64::from(id) * self.payload_len as u64)
    }

    /// Double the slots: rebuild every chain from the keys in `links.bin`,
    /// oldest entry first, as if the entries were pushed again.
    fn grow(&mut self) -> io::Result<()> {
        let slots_log2 = self.slots_log2 + 1;
        let slots = 1usize << slots_log2;
        let mask = (slots - 1) as u64;
        let rec = self.width * 8;
        let group = (RANGE_BYTES / (slots * 4)).clamp(1, self.width);
        let per_chunk = (CHUNK / rec).max(1);
        let mut buf = vec![0u8; per_chunk * rec];
        for first in (0..self.width).step_by(group) {
            let cs = first..(first + group).min(self.width);
            let mut heads = vec![0u32; cs.len() * slots];
            let mut id = 0u32;
            while id < self.len {
                let n = (per_chunk as u32).min(self.len - id) as usize;
                let at = u64::from(id) * rec as u64;
                self.links.read_exact_at(&mut buf[..n * rec], at)?;
                for e in 0..n {
                    for c in cs.clone() {
                        let o = e * rec + c * 8;
                        let key = le32(&buf[o..]);
                        let h = &mut heads[(c - first) * slots + (u64::from(key) & mask) as usize];
                        buf[o + 4..o + 8].copy_from_slice(&h.to_le_bytes());
                        *h = id + e as u32 + 1;
                    }
                }
                self.links.write_all_at(&buf[..n * rec], at)?;
                id += n as u32;
            }
            for c in cs.clone() {
                let bytes: Vec<u8> = heads[(c - first) * slots..(c - first + 1) * slots]
                    .iter()
                    .flat_map(|h| h.to_le_bytes())
                    .collect();
                let f = open_rw(&self.dir.join(format!("heads-{c}.bin")))?;
                f.write_all_at(&bytes, 0)?;
                self.heads[c] = f;
            }
        }
        self.slots_log2 = slots_log2;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32, c: u32) -> u32 {
        // Few distinct keys, so chains hold several entries.
        (i % 97).wrapping_mul(0x9e37_79b9) ^ c
    }

    #[test]
    fn finds_every_entry_with_a_key_across_batches_and_doublings() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = DiskChains::create(dir.path(), 3, 4, 1 << 10).unwrap();
        let n = (1u32 << INITIAL_SLOTS_LOG2) * 2 + 5; // two doublings
        // Batches of very different sizes: sparse and dense updates.
        let mut at = 0u32;
        for size in [1u32, 7, 1000, 60_000, n] {
            let end = (at + size).min(n);
            let keys: Vec<u32> = (at..end).flat_map(|i| [key(i, 0), key(i, 1), i]).collect();
            d.push_batch((end - at) as usize, &keys, |i, buf| {
                buf.extend_from_slice(&(at + i as u32).to_le_bytes())
            })
            .unwrap();
            at = end;
        }
        assert_eq!(d.len(), n);
        assert_eq!(d.slots_log2, INITIAL_SLOTS_LOG2 + 2);
        for probe in [0u32, 1, 96, 1000, 70_000, n - 1] {
            for c in 0..2 {
                let mut out = Vec::new();
                d.find(c, key(probe, c as u32), &mut out).unwrap();
                let want: Vec<u32> = (0..n).rev().filter(|i| i % 97 == probe % 97).collect();
                assert_eq!(out, want, "probe {probe} position {c}");
            }
            let mut out = Vec::new();
            d.find(2, probe, &mut out).unwrap();
            assert_eq!(out, vec![probe]);
            let mut p = [0u8; 4];
            d.payload(probe, &mut p).unwrap();
            assert_eq!(u32::from_le_bytes(p), probe);
        }
        let mut out = Vec::new();
        d.find(2, n + 7, &mut out).unwrap();
        assert!(out.is_empty());
    }
}
