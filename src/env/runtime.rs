//! Tasks and timers through the `tokio` name (madsim under `cfg(madsim)`), and the
//! openraft [`AsyncRuntime`] built on them.
//!
//! openraft's own Tokio runtime crate is compiled against real Tokio and would panic in
//! the simulator, so Arca supplies this one. Under madsim the watch channel is
//! openraft's FIFO `SimWatch`: Tokio's watch wakes receivers in an order drawn from a
//! process-wide RNG, which breaks replay of a seed inside one process.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend};
use openraft_rt_tokio::{TokioMpsc, TokioMutex, TokioOneshot};
use rand::SeedableRng;

/// Run blocking work (fsync, file reads) off the async workers in production; inline in
/// the simulator, which has no threads.
pub async fn blocking<T, F>(work: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    #[cfg(madsim)]
    {
        work()
    }
    #[cfg(not(madsim))]
    {
        match tokio::task::spawn_blocking(work).await {
            Ok(value) => value,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

pin_project_lite::pin_project! {
    /// A nameable timeout future: madsim's `timeout()` returns an opaque type, and the
    /// runtime trait needs to name it.
    pub struct Timeout<F> {
        #[pin]
        future: F,
        #[pin]
        sleep: tokio::time::Sleep,
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(value) = this.future.poll(context) {
            return Poll::Ready(Ok(value));
        }
        this.sleep.poll(context).map(|_| Err(Elapsed))
    }
}

/// `future` with a deadline `duration` from now.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: tokio::time::sleep(duration),
    }
}

/// The openraft runtime on the seam.
pub struct ArcaRuntime {
    #[cfg(not(madsim))]
    runtime: tokio::runtime::Runtime,
    #[cfg(madsim)]
    runtime: madsim::runtime::Runtime,
}

impl std::fmt::Debug for ArcaRuntime {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ArcaRuntime")
    }
}

impl AsyncRuntime for ArcaRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = tokio::task::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = std::time::Instant;
    type TimeoutError = Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = Timeout<T>;
    type ThreadLocalRng = rand::rngs::SmallRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        tokio::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        tokio::time::sleep(duration)
    }

    // Real tokio sleeps until its own `Instant`; madsim's takes the std one as it is.
    #[cfg_attr(madsim, allow(clippy::useless_conversion))]
    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        tokio::time::sleep_until(deadline.into())
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        timeout(duration, future)
    }

    #[cfg_attr(madsim, allow(clippy::useless_conversion))]
    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        Timeout {
            future,
            sleep: tokio::time::sleep_until(deadline.into()),
        }
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        join_error.is_panic()
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        // Election jitter only; under madsim it follows the seed.
        #[cfg(madsim)]
        let seed: u64 = madsim::rand::random();
        #[cfg(not(madsim))]
        let seed: u64 = rand::random();
        rand::rngs::SmallRng::seed_from_u64(seed)
    }

    type Mpsc = TokioMpsc;
    #[cfg(madsim)]
    type Watch = openraft_rt_sim::SimWatch;
    #[cfg(not(madsim))]
    type Watch = openraft_rt_tokio::TokioWatch;
    type Oneshot = TokioOneshot;
    type Mutex<T: OptionalSend + 'static> = TokioMutex<T>;

    fn new(threads: usize) -> Self {
        #[cfg(not(madsim))]
        {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .enable_all()
                .build()
                .expect("a Tokio runtime must start");
            Self { runtime }
        }
        #[cfg(madsim)]
        {
            let _ = threads;
            Self {
                runtime: madsim::runtime::Runtime::new(),
            }
        }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.runtime.block_on(future)
    }

    #[allow(clippy::manual_async_fn)] // the trait fixes the signature
    fn spawn_blocking<F, T>(work: F) -> impl Future<Output = Result<T, io::Error>> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        async move { Ok(blocking(work).await) }
    }
}
