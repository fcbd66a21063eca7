//! What the cache protocols (redis, memcache) share as clients: a request is one or more
//! commands sent as they are, each answered in order, so the bytes that go out must be whole
//! commands: a count off by one would hand every later caller on the connection another's
//! reply.

use super::{OutFrame, ParseError, Payload};
use crate::{errno, CompressType, Status};

/// The frame of a request of `commands` (counted in `payload`'s message by the protocol);
/// EREQUEST for a request that is empty, not whole commands, compressed, or carries an
/// attachment (`protocol` and `what` name the protocol and its commands in the error).
pub(crate) fn command_frame(
    protocol: &str,
    what: &str,
    payload: &Payload,
    commands: Result<usize, ParseError>,
) -> Result<OutFrame, Status> {
    if payload.compress_type != CompressType::None || !payload.attachment.is_empty() {
        return Err(Status::new(
            errno::EREQUEST,
            format!("{protocol} carries neither compression nor an attachment"),
        ));
    }
    match commands {
        Ok(n) if n > 0 => Ok(OutFrame::whole(payload.message.clone())),
        Ok(_) => Err(Status::new(errno::EREQUEST, "request byte size is empty")),
        Err(e) => Err(Status::new(
            errno::EREQUEST,
            format!("a {protocol} request must be whole {what}: {e}"),
        )),
    }
}
