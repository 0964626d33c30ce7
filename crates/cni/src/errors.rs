//! Which CNI error code a failure gets. Pure: the operations say at which step they failed, this
//! decides what the runtime should make of it (retry, fix the configuration, or give up).

use rscni_plugin::error::Error;
use weft_control::attach::Contention;

/// weft's own codes (the spec leaves 100 and up to plugins).
pub const CODE_ATTACH: u32 = 100;
pub const CODE_CHECK: u32 = 101;
pub const CODE_DETACH: u32 = 102;
pub const CODE_GC: u32 = 103;

/// Where an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Opening the cluster store: it may be starting or briefly unreachable.
    Store,
    /// Reading records from the store.
    Read,
    /// This host is not registered: its agent is not running (yet).
    Host,
    /// CNI_NETNS cannot be opened.
    Netns,
    Attach,
    Check,
    Detach,
    Gc,
}

/// Turns an error at `step` into the CNI error the runtime sees, with the whole cause chain.
pub fn at(step: Step, err: &anyhow::Error) -> Error {
    let details = format!("{err:#}");
    if err
        .chain()
        .any(|c| c.downcast_ref::<Contention>().is_some())
    {
        return Error::TryAgainLater(details);
    }
    match step {
        Step::Store | Step::Read => Error::TryAgainLater(format!("cluster store: {details}")),
        Step::Host => Error::TryAgainLater(details),
        Step::Netns => Error::InvalidEnvValue(format!("CNI_NETNS: {details}")),
        Step::Attach => Error::Custom(
            CODE_ATTACH,
            "weft could not attach the container".into(),
            details,
        ),
        Step::Check => Error::Custom(CODE_CHECK, "weft endpoint is not as made".into(), details),
        Step::Detach => Error::Custom(
            CODE_DETACH,
            "weft could not detach the container".into(),
            details,
        ),
        Step::Gc => Error::Custom(
            CODE_GC,
            "weft could not remove stale endpoints".into(),
            details,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_by_step() {
        let e = anyhow::anyhow!("connection refused");
        assert_eq!(u32::from(&at(Step::Store, &e)), 11);
        assert_eq!(u32::from(&at(Step::Host, &e)), 11);
        assert_eq!(u32::from(&at(Step::Netns, &e)), 4);
        assert_eq!(u32::from(&at(Step::Attach, &e)), CODE_ATTACH);
        assert_eq!(u32::from(&at(Step::Check, &e)), CODE_CHECK);
        assert!(at(Step::Store, &e).details().contains("connection refused"));
    }

    #[test]
    fn contention_is_worth_a_retry_wherever_it_surfaces() {
        let e = anyhow::Error::new(Contention("too much contention".into())).context("attaching");
        let c = at(Step::Attach, &e);
        assert_eq!(u32::from(&c), 11);
        assert!(
            c.details().contains("attaching: too much contention"),
            "{c}"
        );
    }
}
