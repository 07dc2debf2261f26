//! Frame codec for `tokio_util::codec::Framed`.

use crate::error::Error;
use bincode::Options;
use bytes::{Buf, BufMut, BytesMut};
use serde::{de::DeserializeOwned, Serialize};

/// Protocol version spoken by this build. Version 2: messages carry a
/// delay level, stored messages their origin and delay. Version 3:
/// transactions (producer heartbeats, end, check-back) and the pending
/// halves and timers in the broker's runtime figures. Version 4: routes
/// list every broker of a group by id, with its role and term. Version 5:
/// controller mode (controller heartbeats, sync-state sets, Raft between
/// controllers, the term on replica pulls). Version 6: controller
/// heartbeats say whether the replica serves and the last term it
/// recorded; a write to a replica that is not master is answered
/// `NotMaster`. Version 7: a broker tells its groups' members when the
/// group changes (`NotifyConsumerIdsChanged`), and its runtime figures
/// count commit log fsyncs. Version 8: offset resets (`ResetOffset`, the
/// notice to consumers, reset generations on pulls, commits and offset
/// queries, and in what slaves copy). Version 9: POP consumption
/// (`PopMessage`, `AckMessage`, `ChangeInvisibleTime`), batch sends, and
/// replies pushed to requesters (`PushReplyMessage`). Version 10: runtime
/// figures count sends refused busy; queries by queue offset, producer
/// connections and consumers' running info (`GetConsumerRunningInfo`,
/// also asked of the consumers by the broker).
pub const VERSION: u16 = 11;
/// Largest frame body accepted: a 4 MiB message plus room for the rest.
pub const FRAME_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Bytes of version, flags and opaque after the length field.
pub const HEADER_LEN: usize = 2 + 1 + 4;

const FLAG_RESPONSE: u8 = 1;
const FLAG_ONEWAY: u8 = 2;

/// One frame on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Protocol version of the sender.
    pub version: u16,
    /// Whether this is a response.
    pub response: bool,
    /// Whether the sender expects no response.
    pub oneway: bool,
    /// Request id, echoed by the response.
    pub opaque: u32,
    /// Encoded [`super::Request`] or [`super::Response`].
    pub payload: Vec<u8>,
}

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_limit(FRAME_BYTES_MAX as u64)
}

/// Encodes a request or response payload; a value past the frame limit is
/// an error, never a panic (a response of many large messages, a request
/// with a body past every limit).
pub fn encode_payload<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    options()
        .serialize(value)
        .map_err(|e| Error::Protocol(format!("payload does not fit a frame of {FRAME_BYTES_MAX} bytes: {e}")))
}

/// Decodes a payload; never panics on arbitrary bytes.
pub fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    options().deserialize(bytes).map_err(|e| Error::Protocol(format!("undecodable payload: {e}")))
}

/// Splits a byte stream into frames and back.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameCodec;

impl tokio_util::codec::Decoder for FrameCodec {
    type Item = Frame;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Error> {
        if src.len() < 4 {
            return Ok(None);
        }
        let body_len = u32::from_be_bytes(src[..4].try_into().expect("4 bytes")) as usize;
        if body_len < HEADER_LEN {
            return Err(Error::Protocol(format!("frame body of {body_len} bytes is shorter than its header")));
        }
        if body_len > FRAME_BYTES_MAX {
            return Err(Error::Protocol(format!("frame body of {body_len} bytes exceeds the {FRAME_BYTES_MAX} allowed")));
        }
        if src.len() < 4 + body_len {
            src.reserve(4 + body_len - src.len());
            return Ok(None);
        }
        src.advance(4);
        let version = src.get_u16();
        let flags = src.get_u8();
        let opaque = src.get_u32();
        let payload = src.split_to(body_len - HEADER_LEN).to_vec();
        Ok(Some(Frame {
            version,
            response: flags & FLAG_RESPONSE != 0,
            oneway: flags & FLAG_ONEWAY != 0,
            opaque,
            payload,
        }))
    }

    /// A peer that closes its connection within a frame (a client giving
    /// up on a request mid-write) ends the stream; the part is dropped.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Error> {
        let frame = self.decode(src)?;
        if frame.is_none() && !src.is_empty() {
            tracing::debug!(bytes = src.len(), "the peer closed its connection within a frame");
            src.clear();
        }
        Ok(frame)
    }
}

impl tokio_util::codec::Encoder<Frame> for FrameCodec {
    type Error = Error;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), Error> {
        let body_len = HEADER_LEN + frame.payload.len();
        if body_len > FRAME_BYTES_MAX {
            return Err(Error::Protocol(format!("frame body of {body_len} bytes exceeds the {FRAME_BYTES_MAX} allowed")));
        }
        dst.reserve(4 + body_len);
        dst.put_u32(body_len as u32);
        dst.put_u16(frame.version);
        let mut flags = 0;
        if frame.response {
            flags |= FLAG_RESPONSE;
        }
        if frame.oneway {
            flags |= FLAG_ONEWAY;
        }
        dst.put_u8(flags);
        dst.put_u32(frame.opaque);
        dst.put_slice(&frame.payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (found by the request-path fuzz): a payload past the frame
    /// limit panicked in `encode_payload`, in the server's response path.
    #[test]
    fn a_payload_past_the_frame_limit_is_an_error() {
        let huge = vec![0u8; FRAME_BYTES_MAX + 1];
        assert!(encode_payload(&serde_bytes::ByteBuf::from(huge)).is_err());
        assert!(encode_payload(&serde_bytes::ByteBuf::from(vec![0u8; 16])).is_ok());
    }
    use crate::protocol::{Request, Response};
    use proptest::prelude::*;
    use tokio_util::codec::{Decoder, Encoder};

    #[test]
    fn fixture_bytes() {
        let frame = Frame { version: 1, response: true, oneway: false, opaque: 7, payload: vec![0xAB] };
        let mut buf = BytesMut::new();
        FrameCodec.encode(frame.clone(), &mut buf).unwrap();
        assert_eq!(&buf[..], &[0, 0, 0, 8, 0, 1, 1, 0, 0, 0, 7, 0xAB]);
        // Arrives in two pieces: incomplete is a value, not an error.
        let mut part = BytesMut::from(&buf[..5]);
        assert_eq!(FrameCodec.decode(&mut part).unwrap(), None);
        part.extend_from_slice(&buf[5..]);
        assert_eq!(FrameCodec.decode(&mut part).unwrap(), Some(frame));
        assert!(part.is_empty());
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut short = BytesMut::from(&[0u8, 0, 0, 2, 0, 0][..]);
        assert!(FrameCodec.decode(&mut short).is_err());
        let mut huge = BytesMut::from(&[0xFFu8, 0xFF, 0xFF, 0xFF][..]);
        let err = FrameCodec.decode(&mut huge).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Arbitrary bytes never panic the frame decoder or the payload decoders.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(frame)) = FrameCodec.decode(&mut buf) {
                let _ = decode_payload::<Request>(&frame.payload);
                let _ = decode_payload::<Response>(&frame.payload);
            }
            let _ = decode_payload::<Request>(&bytes);
            let _ = decode_payload::<Response>(&bytes);
        }

        /// Frames survive encode then decode, whatever their content.
        #[test]
        fn frames_round_trip(opaque in any::<u32>(), response in any::<bool>(), oneway in any::<bool>(), payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let frame = Frame { version: VERSION, response, oneway, opaque, payload };
            let mut buf = BytesMut::new();
            FrameCodec.encode(frame.clone(), &mut buf).unwrap();
            prop_assert_eq!(FrameCodec.decode(&mut buf).unwrap(), Some(frame));
        }
    }
}
