//! An ordered map stage whose limit counts running futures only.
//!
//! `StreamExt::buffered(n)` keeps n futures, finished or not, and starts the
//! next only when the oldest is handed on: a reply that finished early holds
//! its slot until every earlier one is done, so each slot waits for the
//! slowest reply of its window (head-of-line blocking). With a fixed 50 ms
//! server that cost 0.7–4.6 % of throughput (most at 256 in flight)
//! (docs/BENCHMARKS.md, `scripts/bench-llm`). Here up to `running` futures run at once, finished
//! results wait in a reorder buffer, and output still comes in input order;
//! `window` bounds running plus waiting, so a stalled head cannot make the
//! buffer grow without limit.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::{Join, Ready, join, ready};
use futures::stream::{Fuse, FusedStream, FuturesUnordered};
use futures::{Stream, StreamExt};

/// Map `input`'s futures with at most `running` in flight and at most
/// `window` (≥ `running`) started but not yet handed on; outputs in input
/// order.
pub fn ordered_window<S>(input: S, running: usize, window: usize) -> OrderedWindow<S>
where
    S: Stream,
    S::Item: Future,
{
    let running = running.max(1);
    OrderedWindow {
        input: Box::pin(input.fuse()),
        running_limit: running,
        window: window.max(running) as u64,
        running: FuturesUnordered::new(),
        finished: BTreeMap::new(),
        next_in: 0,
        next_out: 0,
    }
}

pub struct OrderedWindow<S>
where
    S: Stream,
    S::Item: Future,
{
    input: Pin<Box<Fuse<S>>>,
    running_limit: usize,
    window: u64,
    /// Each future joined with its position in the input.
    running: FuturesUnordered<Join<S::Item, Ready<u64>>>,
    finished: BTreeMap<u64, <S::Item as Future>::Output>,
    next_in: u64,
    next_out: u64,
}

impl<S> Stream for OrderedWindow<S>
where
    S: Stream,
    S::Item: Future,
{
    type Item = <S::Item as Future>::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Every field is Unpin (the input is boxed; FuturesUnordered pins
        // its futures itself).
        let this = Pin::into_inner(self);
        loop {
            while !this.input.is_terminated()
                && this.running.len() < this.running_limit
                && this.next_in - this.next_out < this.window
            {
                match this.input.as_mut().poll_next(cx) {
                    Poll::Ready(Some(future)) => {
                        this.running.push(join(future, ready(this.next_in)));
                        this.next_in += 1;
                    }
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
            if let Some(out) = this.finished.remove(&this.next_out) {
                this.next_out += 1;
                return Poll::Ready(Some(out));
            }
            match this.running.poll_next_unpin(cx) {
                Poll::Ready(Some((out, at))) => {
                    this.finished.insert(at, out);
                }
                // Nothing running and the head not finished: either the
                // input is done (and so are we) or it will wake us.
                Poll::Ready(None) if this.input.is_terminated() => return Poll::Ready(None),
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Item i takes `delay(i)` ms; returns the outputs, the most running at
    /// once, and the elapsed (virtual) time.
    async fn run(
        n: u64,
        running: usize,
        window: usize,
        delay: impl Fn(u64) -> u64,
    ) -> (Vec<u64>, usize, Duration) {
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let start = tokio::time::Instant::now();
        let futures = futures::stream::iter(0..n).map(|i| {
            let (now, most) = (now.clone(), most.clone());
            let ms = delay(i);
            async move {
                let c = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(c, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                i
            }
        });
        let out: Vec<u64> = ordered_window(futures, running, window).collect().await;
        (out, most.load(Ordering::SeqCst), start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn output_keeps_input_order_and_running_stays_under_the_limit() {
        let (out, most, _) = run(200, 8, 32, |i| (i * 7919) % 13 + 1).await;
        assert_eq!(out, (0..200).collect::<Vec<_>>());
        assert_eq!(most, 8);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_head_does_not_hold_the_other_slots() {
        // Item 0 takes 100 ms, the rest 10 ms, 4 at a time. `buffered(4)`
        // holds 3 finished items behind item 0 and takes ≈ 100 + 9 × 10 ms
        // for 40 items; with room to reorder, the other three slots keep
        // working while item 0 runs (≈ 13 × 10 ms).
        let slow_head = |i| if i == 0 { 100 } else { 10 };
        let (out, _, took) = run(40, 4, 64, slow_head).await;
        assert_eq!(out, (0..40).collect::<Vec<_>>());
        assert!(took <= Duration::from_millis(140), "{took:?}");
        let started = tokio::time::Instant::now();
        let buffered: Vec<u64> = futures::stream::iter(0..40u64)
            .map(|i| async move {
                tokio::time::sleep(Duration::from_millis(slow_head(i))).await;
                i
            })
            .buffered(4)
            .collect()
            .await;
        assert_eq!(buffered, out);
        assert!(
            started.elapsed() > took,
            "{:?} vs {took:?}",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_bounds_what_waits_behind_a_stalled_head() {
        // Window 6 with 4 running: while item 0 stalls, only items up to 5
        // may start, so the tail cannot finish before the head does.
        let (out, _, took) = run(12, 4, 6, |i| if i == 0 { 100 } else { 1 }).await;
        assert_eq!(out, (0..12).collect::<Vec<_>>());
        assert!(took >= Duration::from_millis(101), "{took:?}");
        // An empty input ends at once.
        let (out, most, _) = run(0, 4, 6, |_| 1).await;
        assert!(out.is_empty() && most == 0);
    }
}
