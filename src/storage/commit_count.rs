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

tokio::task_local! {
    static COMMITS: Cell<u64>;
}

/// Run `future`, counting the commits it makes on its own task.
pub async fn counting_commits<F: Future>(future: F) -> (F::Output, u64) {
    COMMITS
        .scope(Cell::new(0), async move {
            let output = future.await;
            let commits = COMMITS.with(Cell::get);
            (output, commits)
        })
        .await
}

/// Count one successful commit in the current request's scope, if there is one.
pub fn note_commit() {
    let _outside_any_request = COMMITS.try_with(|commits| commits.set(commits.get() + 1));
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commits_are_counted_inside_the_scope_only() {
        note_commit();
        let ((), commits) = counting_commits(async {
            note_commit();
            note_commit();
        })
        .await;
        assert_eq!(commits, 2);
        let ((), commits) = counting_commits(async {}).await;
        assert_eq!(commits, 0);
    }
}
