//! Whether a request committed anything, for the one decision that needs it: an answer
//! computed on an active node that then finds it no longer leads. A request that
//! committed was served by the leader of its term (nothing commits otherwise), so its
//! answer stands; one that only read may have read old state and must not be sent.
//!
//! The count lives in a task-local scope around the request, so it needs no plumbing
//! through every handler; a commit made from another task is not counted, which errs on
//! the side of discarding an answer, never of sending a stale one.

use std::cell::Cell;
use std::future::Future;

/// What a request committed: how many batches, and the highest index among them (the
/// index its `X-Vault-Index` reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    pub commits: u64,
    pub highest_index: u64,
}

tokio::task_local! {
    static COMMITS: Cell<Committed>;
}

/// Run `future`, counting the commits it makes on its own task.
pub async fn counting_commits<F: Future>(future: F) -> (F::Output, Committed) {
    COMMITS
        .scope(Cell::new(Committed::default()), async move {
            let output = future.await;
            let committed = COMMITS.with(Cell::get);
            (output, committed)
        })
        .await
}

/// Count one successful commit, at `index`, in the current request's scope, if any.
pub fn note_commit(index: u64) {
    let _outside_any_request = COMMITS.try_with(|committed| {
        let before = committed.get();
        committed.set(Committed {
            commits: before.commits + 1,
            highest_index: before.highest_index.max(index),
        });
    });
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commits_are_counted_inside_the_scope_only() {
        note_commit(1);
        let ((), committed) = counting_commits(async {
            note_commit(9);
            note_commit(7);
        })
        .await;
        assert_eq!(
            committed,
            Committed {
                commits: 2,
                highest_index: 9
            }
        );
        let ((), committed) = counting_commits(async {}).await;
        assert_eq!(committed, Committed::default());
    }
}
