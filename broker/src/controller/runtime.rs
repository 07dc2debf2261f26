//! The async runtime openraft runs on. In the real build that is tokio,
//! as openraft ships it. Under `--cfg madsim` the same calls go to madsim:
//! its tasks, its clock (whose `Instant::now` is the simulated one, so
//! openraft's tokio `Instant` reads simulated time too) and its seeded RNG
//! for election timeouts, so a controller's elections replay per seed.

#[cfg(not(madsim))]
pub use openraft::TokioRuntime as Runtime;

#[cfg(madsim)]
pub use sim::SimRuntime as Runtime;

#[cfg(madsim)]
mod sim {
    use openraft::async_runtime::TokioOneShotSender;
    use openraft::{AsyncRuntime, OptionalSend, TokioInstant};
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    /// openraft's runtime over madsim.
    #[derive(Debug, Default, PartialEq, Eq)]
    pub struct SimRuntime;

    /// A future with a deadline: the future first, then the deadline, as
    /// tokio's `timeout` polls them.
    pub struct Timeout<T> {
        future: Pin<Box<T>>,
        sleep: Pin<Box<madsim::time::Sleep>>,
    }

    impl<R, T: Future<Output = R>> Future for Timeout<T> {
        type Output = Result<R, madsim::time::error::Elapsed>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if let Poll::Ready(out) = self.future.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(madsim::time::error::Elapsed)),
                Poll::Pending => Poll::Pending,
            }
        }
    }

    /// A rand 0.8 generator drawing from madsim's seeded RNG.
    pub struct SimRng;

    impl rand08::RngCore for SimRng {
        fn next_u32(&mut self) -> u32 {
            madsim::rand::random::<u32>()
        }

        fn next_u64(&mut self) -> u64 {
            madsim::rand::random::<u64>()
        }

        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for chunk in dest.chunks_mut(8) {
                let bytes = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
        }

        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand08::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    fn sim_instant(at: TokioInstant) -> std::time::Instant {
        at.into_std()
    }

    impl AsyncRuntime for SimRuntime {
        type JoinError = madsim::task::JoinError;
        type JoinHandle<T: OptionalSend + 'static> = madsim::task::JoinHandle<T>;
        type Sleep = madsim::time::Sleep;
        type Instant = TokioInstant;
        type TimeoutError = madsim::time::error::Elapsed;
        type Timeout<R, T: Future<Output = R> + OptionalSend> = Timeout<T>;
        type ThreadLocalRng = SimRng;
        type OneshotSender<T: OptionalSend> = TokioOneShotSender<T>;
        type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;
        type OneshotReceiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;

        fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
        where
            T: Future + OptionalSend + 'static,
            T::Output: OptionalSend + 'static,
        {
            madsim::task::spawn(future)
        }

        fn sleep(duration: Duration) -> Self::Sleep {
            madsim::time::sleep(duration)
        }

        fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
            madsim::time::sleep_until(sim_instant(deadline))
        }

        fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
            Timeout { future: Box::pin(future), sleep: Box::pin(madsim::time::sleep(duration)) }
        }

        fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
            Timeout { future: Box::pin(future), sleep: Box::pin(madsim::time::sleep_until(sim_instant(deadline))) }
        }

        fn is_panic(join_error: &Self::JoinError) -> bool {
            join_error.is_panic()
        }

        fn thread_rng() -> Self::ThreadLocalRng {
            SimRng
        }

        fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
        where
            T: OptionalSend,
        {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (TokioOneShotSender(tx), rx)
        }
    }
}
