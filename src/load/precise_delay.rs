//! Waits shorter than tokio's timer can measure.
//!
//! tokio's timer wheel ticks in milliseconds: a `sleep(20µs)` lasts until
//! the next tick, anywhere up to a millisecond or two. The close delays
//! (`server.close_delay`, `client.close_delay`) decide a race that plays
//! out in microseconds (who sends the first FIN), so a delay of 5 µs must
//! be 5 µs, not "about a millisecond": before this existed, 20 µs, 100 µs
//! and 1 ms gave the same split of TIME_WAIT. [`PreciseDelay`] sleeps on
//! the timer until a tick before its deadline and then polls the clock,
//! yielding to the runtime between polls: at most about a millisecond of
//! spinning per delay, and none when the caller stops waiting early (the
//! server stops at the client's FIN).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The timer's granularity: below this, the clock is polled.
pub const TIMER_TICK: Duration = Duration::from_millis(1);

/// A delay that ends within microseconds of its deadline.
pub struct PreciseDelay {
    deadline: Instant,
    /// The timer's part, ending a tick before the deadline.
    coarse: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl PreciseDelay {
    pub fn new(delay: Duration) -> Self {
        PreciseDelay {
            deadline: Instant::now() + delay,
            coarse: delay
                .checked_sub(TIMER_TICK)
                .filter(|d| !d.is_zero())
                .map(|d| Box::pin(tokio::time::sleep(d))),
        }
    }

    /// Ready once the deadline has passed.
    pub fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(sleep) = &mut self.coarse {
            std::task::ready!(sleep.as_mut().poll(cx));
            self.coarse = None;
        }
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        // Polled again as soon as the runtime has run what else is ready.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Future for PreciseDelay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_elapsed(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delay_below_the_timer_tick_lasts_what_it_says() {
        // The median of many: a loaded machine may preempt any single one.
        let mut took: Vec<Duration> = Vec::new();
        for _ in 0..50 {
            let start = Instant::now();
            PreciseDelay::new(Duration::from_micros(20)).await;
            took.push(start.elapsed());
        }
        took.sort();
        let median = took[took.len() / 2];
        assert!(median >= Duration::from_micros(20), "{median:?}");
        // tokio's sleep(20µs) takes about a millisecond.
        assert!(median < Duration::from_micros(500), "{median:?}");
        let start = Instant::now();
        PreciseDelay::new(Duration::from_millis(3)).await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(3), "{took:?}");
    }
}
