//! How a hook's work ends, as types (pure).
//!
//! * [`Step`]: one step of the converge either got done or is blocked on
//!   something only the operator can resolve (foreign data in the way, a
//!   disk that is full). `Result<Step<T>>` keeps the two kinds of failure
//!   apart: an `Err` fails the hook and Juju retries it; a
//!   [`Step::Blocked`] succeeds with a blocked status.
//! * [`Problem`]: what the unit's status shows when it is not active, and
//!   whether it waits (for Juju, for the leader) or is blocked.
//! * [`Outcome`]: the unit's status at the end of a converge.

/// One step's result: done, or blocked with the message for the status.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Step<T = ()> {
    Done(T),
    Blocked(String),
}

impl<T> Step<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Step<U> {
        match self {
            Step::Done(value) => Step::Done(f(value)),
            Step::Blocked(message) => Step::Blocked(message),
        }
    }
}

/// Something keeping the unit from being active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Only the operator (or a consumer) can resolve it.
    Blocked(String),
    /// Resolves itself once Juju or the leader catches up.
    Waiting(String),
}

impl Problem {
    pub fn message(&self) -> &str {
        match self {
            Problem::Blocked(message) | Problem::Waiting(message) => message,
        }
    }

    pub fn is_waiting(&self) -> bool {
        matches!(self, Problem::Waiting(_))
    }
}

/// How a converge ended, for the unit's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Serving; the message describes what and where.
    Active(String),
    Blocked(String),
    Waiting(String),
}

impl Outcome {
    /// Active with `message` when there are no problems; otherwise every
    /// problem in one message, waiting only when every problem is a wait.
    pub fn from_problems(problems: &[Problem], message: impl FnOnce() -> String) -> Outcome {
        if problems.is_empty() {
            return Outcome::Active(message());
        }
        let summary = problems
            .iter()
            .map(Problem::message)
            .collect::<Vec<_>>()
            .join("; ");
        if problems.iter().all(Problem::is_waiting) {
            Outcome::Waiting(summary)
        } else {
            Outcome::Blocked(summary)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_waits_only_when_every_problem_is_a_wait() {
        let active = || "PostgreSQL 16 on the root disk".to_string();
        let wait = Problem::Waiting("db:1: waiting for the remote application".into());
        let block = Problem::Blocked("db:2: refused".into());
        let cases = [
            (vec![], Outcome::Active(active())),
            (
                vec![wait.clone()],
                Outcome::Waiting("db:1: waiting for the remote application".into()),
            ),
            (
                vec![wait.clone(), block.clone()],
                Outcome::Blocked("db:1: waiting for the remote application; db:2: refused".into()),
            ),
            (vec![block], Outcome::Blocked("db:2: refused".into())),
        ];
        for (problems, want) in cases {
            assert_eq!(
                Outcome::from_problems(&problems, active),
                want,
                "{problems:?}"
            );
        }
        assert_eq!(
            Step::Done(2).map(|n| n * 2),
            Step::<i32>::Done(4),
            "map keeps Done"
        );
        assert_eq!(
            Step::<i32>::Blocked("full".into()).map(|n| n * 2),
            Step::Blocked("full".into())
        );
    }
}
