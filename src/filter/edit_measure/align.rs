//! Word alignment: hunks of a patience diff, with block exchanges
//! recognised as one swap.

use super::*;

/// A maximal run of differences between two matched stretches:
/// `a[a0..a1]` became `b[b0..b1]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hunk {
    pub(super) a0: usize,
    pub(super) a1: usize,
    pub(super) b0: usize,
    pub(super) b1: usize,
}

impl Hunk {
    pub(super) fn kind(&self) -> OpKind {
        match (self.a0 == self.a1, self.b0 == self.b1) {
            (true, _) => OpKind::Insert,
            (_, true) => OpKind::Delete,
            _ => OpKind::Substitute,
        }
    }
}

/// "a" and "an" as one word, so an article repaired after a swap does not
/// hide the swap.
pub(super) fn article(k: &str) -> &str {
    if k == "an" { "a" } else { k }
}

pub(super) fn keys(t: &[Token], from: usize, to: usize) -> Vec<&str> {
    t[from..to].iter().map(|t| t.key.as_str()).collect()
}

pub(super) fn span_text(field: &str, t: &[Token], from: usize, to: usize) -> String {
    if from == to {
        return String::new();
    }
    field[t[from].start..t[to - 1].end].to_string()
}

pub(super) fn byte_range(t: &[Token], from: usize, to: usize, field_len: usize) -> (usize, usize) {
    if from < to {
        (t[from].start, t[to - 1].end)
    } else if from < t.len() {
        (t[from].start, t[from].start)
    } else {
        (field_len, field_len)
    }
}

/// Longest stretch of text (in words) searched for an exchange of two
/// blocks; swaps people make are short, and the search is cubic.
pub(super) const MAX_EXCHANGE_WORDS: usize = 60;

/// Whether `rb` is `ra` = Y X Z with Y and Z exchanged (Z X Y), Y and Z
/// not empty, X possibly empty; returns (|Y|, |Z|), shortest Y first.
pub(super) fn block_exchange(ra: &[&str], rb: &[&str]) -> Option<(usize, usize)> {
    let n = ra.len();
    if n < 2 || rb.len() != n || ra == rb {
        return None;
    }
    // Only the same words can be an exchange: a cheap test first, since
    // most stretches are not.
    let (mut sa, mut sb) = (ra.to_vec(), rb.to_vec());
    sa.sort_unstable();
    sb.sort_unstable();
    if sa != sb {
        return None;
    }
    for y in 1..n {
        for z in 1..=n - y {
            let (ys, xs, zs) = (&ra[..y], &ra[y..n - z], &ra[n - z..]);
            if rb[..z] == *zs && rb[z..n - y] == *xs && rb[n - y..] == *ys {
                return Some((y, z));
            }
        }
    }
    None
}

/// Word alignment: the runs of differences between `a` and `b`.
/// Patience diff anchors on words that occur once on each side, so a
/// frequent "the" or "a" does not pull a long text out of line.
pub(super) fn hunks(a: &[Token], b: &[Token]) -> Vec<Hunk> {
    let ka: Vec<&str> = a.iter().map(|t| t.key.as_str()).collect();
    let kb: Vec<&str> = b.iter().map(|t| t.key.as_str()).collect();
    let ops = similar::capture_diff_slices(similar::Algorithm::Patience, &ka, &kb);
    // The matched blocks, in order; the differences are the gaps between
    // them (built from the matches alone, whatever order the diff reports
    // its insertions and deletions in).
    let mut equal: Vec<(usize, usize, usize)> = ops
        .iter()
        .filter_map(|op| match *op {
            similar::DiffOp::Equal {
                old_index,
                new_index,
                len,
            } => Some((old_index, new_index, len)),
            _ => None,
        })
        .collect();
    equal.sort_unstable();
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    for (oi, ni, len) in equal.into_iter().chain([(a.len(), b.len(), 0)]) {
        if oi < i || ni < j {
            continue;
        }
        if oi > i || ni > j {
            out.push(Hunk {
                a0: i,
                a1: oi,
                b0: j,
                b1: ni,
            });
        }
        (i, j) = (oi + len, ni + len);
    }
    out
}
