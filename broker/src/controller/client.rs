//! Calling the controllers: whichever leads. A controller that does not
//! lead names the leader it knows of; the call goes there next.

use crate::error::{Error, Result};
use crate::net::ConnectionPool;
use crate::protocol::{Call, ResponseCode};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The controllers, seen from a broker or an admin tool.
pub struct ControllerClient {
    addrs: Vec<String>,
    leader: Mutex<Option<String>>,
    pool: Arc<ConnectionPool>,
    timeout: Duration,
}

impl ControllerClient {
    /// Controllers at `addrs`, called over `pool`, each call waiting up to
    /// `timeout`.
    pub fn new(addrs: Vec<String>, pool: Arc<ConnectionPool>, timeout: Duration) -> ControllerClient {
        ControllerClient { addrs, leader: Mutex::new(None), pool, timeout }
    }

    /// Sends `request` to the leader: the last one that answered, else
    /// each controller in turn, following a "not leader" answer to the
    /// leader it names. The first answer that is not "not leader" is the
    /// outcome: the command's reply, or the controller's refusal.
    pub async fn call<C: Call>(&self, command: C) -> Result<C::Reply> {
        let request = command.into();
        let known = self.leader.lock().expect("leader").clone();
        let mut queue: Vec<String> = known.into_iter().chain(self.addrs.iter().cloned()).collect();
        let mut tried: Vec<String> = Vec::new();
        let mut last = Error::Protocol(format!("no controller of {:?} answered", self.addrs));
        while let Some(addr) = (!queue.is_empty()).then(|| queue.remove(0)) {
            if tried.contains(&addr) {
                continue;
            }
            tried.push(addr.clone());
            match self.pool.request(&addr, &request, self.timeout).await {
                Ok(response) if response.code == ResponseCode::ControllerNotLeader => {
                    let named = response.remark.split(':').count() >= 2 && !response.remark.contains(' ');
                    if named && !tried.contains(&response.remark) {
                        queue.insert(0, response.remark.clone());
                    }
                    last = Error::Protocol(format!("controller {addr} does not lead ({})", response.remark));
                }
                Ok(response) => {
                    *self.leader.lock().expect("leader") = Some(addr);
                    return response.into_reply(request.name());
                }
                Err(e) => last = e,
            }
        }
        *self.leader.lock().expect("leader") = None;
        Err(last)
    }
}
