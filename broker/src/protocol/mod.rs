//! The house protocol, one front of the broker: length-prefixed frames
//! carrying a [`Request`] (one command of [`crate::command`]) or a
//! [`Response`].
//!
//! ```text
//! | body_len u32 BE | version u16 BE | flags u8 | opaque u32 BE | payload (bincode) |
//!                   `---------------- body_len bytes -----------------------------'
//! ```
//! `flags` bit 0 marks a response, bit 1 a oneway request (no response).
//! `opaque` pairs a response with its request. The payload is encoded with
//! bincode under a size limit. Decoding never panics: bad framing is an
//! error that closes the connection, a bad payload is answered with
//! [`ResponseCode::BadRequest`].

mod codec;
mod wire;

pub use codec::{decode_payload, encode_payload, Frame, FrameCodec, FRAME_BYTES_MAX, HEADER_LEN, VERSION};
pub use wire::*;
