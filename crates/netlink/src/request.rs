//! The three shapes of netlink exchange used by every module: ack'ed
//! changes, single gets and dumps. Requests are built by hand (rather than
//! through rtnetlink's request builders) so each call controls its
//! `NLM_F_*` flags exactly, e.g. `NLM_F_APPEND` for extra flood entries.

use futures::StreamExt;
use nix::errno::Errno;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use rtnetlink::packet_route::RouteNetlinkMessage;

use crate::error::RawError;
use crate::Netlink;

impl Netlink {
    async fn exchange(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, RawError> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | flags;
        let mut handle = self.handle.clone();
        let mut responses = handle
            .request(req)
            .map_err(|_| RawError::Msg("netlink connection is closed".into()))?;
        let mut out = Vec::new();
        while let Some(reply) = responses.next().await {
            match reply.payload {
                NetlinkPayload::Error(e) => {
                    if let Some(code) = e.code {
                        return Err(RawError::Errno(Errno::from_raw(code.get().abs())));
                    }
                }
                NetlinkPayload::InnerMessage(m) => out.push(m),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Sends a change request and waits for the kernel's ACK/NACK.
    pub(crate) async fn ack(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), RawError> {
        self.exchange(msg, NLM_F_ACK | flags).await.map(drop)
    }

    /// Sends a non-dump get and returns the one answer.
    pub(crate) async fn get_one(
        &self,
        msg: RouteNetlinkMessage,
    ) -> Result<RouteNetlinkMessage, RawError> {
        self.exchange(msg, 0)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| RawError::Msg("kernel sent no answer".into()))
    }

    /// Sends a dump request and collects every answer.
    pub(crate) async fn dump(
        &self,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, RawError> {
        self.exchange(msg, NLM_F_DUMP).await
    }
}
