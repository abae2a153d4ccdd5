//! Who made a request, for a layer outside authentication that wants to
//! know after the response (activity recording): that layer runs the
//! request inside [`observe`], and the authentication layer [`note`]s the
//! caller there.
//!
//! A task-local rather than the response's extensions: a response's
//! extensions start empty, so putting the caller there cost a map and two
//! boxes per request; the task-local costs nothing when nobody observes
//! (`note` finds no scope) and no allocation when someone does.
//!
//! Invariant: [`observe`]'s future yields the caller noted while it ran,
//! if any; a request authentication never reached (refused earlier,
//! cancelled first) yields none.

use std::cell::Cell;
use std::future::Future;
use std::net::IpAddr;

use tokio::task::futures::TaskLocalFuture;

use crate::domain::Principal;

/// The caller as authentication found it: the address (after the
/// trusted-proxy rule) and the principal, `None` for an anonymous request
/// or one whose credentials were refused.
#[derive(Debug, Clone)]
pub struct Caller {
    pub ip: IpAddr,
    pub principal: Option<Principal>,
}

tokio::task_local! {
    static CALLER: Cell<Option<Caller>>;
}

/// The future of a request run inside [`observe`].
pub type Observed<F> = TaskLocalFuture<Cell<Option<Caller>>, F>;

/// Runs `request` with a place for [`note`]; once it is done,
/// [`noted`] gives what was noted.
pub fn observe<F: Future>(request: F) -> Observed<F> {
    CALLER.scope(Cell::new(None), request)
}

/// The caller noted inside a finished [`observe`] future.
pub fn noted<F: Future>(request: std::pin::Pin<&mut Observed<F>>) -> Option<Caller> {
    request.take_value().and_then(Cell::into_inner)
}

/// Notes the caller for an enclosing [`observe`]; nothing happens without one.
pub fn note(ip: IpAddr, principal: Option<&Principal>) {
    let _ = CALLER.try_with(|slot| slot.set(Some(Caller { ip, principal: principal.cloned() })));
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::domain::AuthenticatedUser;

    #[tokio::test]
    async fn an_observed_request_yields_its_caller_and_an_unobserved_one_notes_nothing() {
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let user = Principal::User(AuthenticatedUser {
            user_id: uuid::Uuid::now_v7(),
            session_id: uuid::Uuid::now_v7(),
            role: crate::domain::Role::User,
        });
        let mut request = std::pin::pin!(observe(async {
            tokio::task::yield_now().await;
            note(ip, Some(&user));
        }));
        request.as_mut().await;
        let caller = noted(request).expect("the caller was noted");
        assert_eq!(caller.ip, ip);
        assert_eq!(caller.principal.map(|p| p.principal_id()), Some(user.principal_id()));

        let mut silent = std::pin::pin!(observe(async {}));
        silent.as_mut().await;
        assert!(noted(silent).is_none(), "nothing noted");
        note(ip, None); // outside any observe: no effect, no panic
    }
}
