//! Blocking work off the event loop: every call that does KDF, storage or network work runs
//! on libuv's thread pool as an N-API async task and settles a Promise on the JS thread.

use napi::bindgen_prelude::{AsyncTask, ToNapiValue, TypeName};
use napi::{Env, Task};

use crate::errors::{Failure, Outcome};

type Work<T> = Box<dyn FnOnce() -> Outcome<T> + Send>;

/// One blocking call and the JS value it resolves to.
pub struct Blocking<T> {
    work: Option<Work<T>>,
}

/// A Promise settled by `work`, run on the thread pool.
pub fn spawn<T, F>(work: F) -> AsyncTask<Blocking<T>>
where
    T: ToNapiValue + TypeName + Send + 'static,
    F: FnOnce() -> Outcome<T> + Send + 'static,
{
    AsyncTask::new(Blocking {
        work: Some(Box::new(work)),
    })
}

impl<T> Task for Blocking<T>
where
    T: ToNapiValue + TypeName + Send + 'static,
{
    type Output = Outcome<T>;
    type JsValue = T;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        // Each task is computed once; a second call would be N-API misuse, answered with an
        // error rather than a panic.
        // A panic is not let unwind into libuv (it would abort the process): it rejects.
        Ok(match self.work.take() {
            Some(work) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|_| {
                    Err(Failure::new(
                        crate::errors::code::ERROR,
                        "internal error: the call panicked",
                    ))
                }),
            None => Err(Failure::new(
                crate::errors::code::ERROR,
                "internal error: a task ran twice",
            )),
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        output.map_err(|failure| failure.into_napi(&env))
    }
}
