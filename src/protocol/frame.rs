//! Frames: a 4-byte big-endian size, then that many bytes.

use bytes::BytesMut;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes a frame's buffer grows by as its bytes arrive: a peer that announces a large frame
/// and then sends slowly (or never) holds at most this much more memory than it has sent.
const GROW_STEP: usize = 64 << 10;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("frame size {size} is negative")]
    NegativeSize { size: i32 },
    #[error("frame size {size} exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: i32, max: usize },
    #[error("connection closed in the middle of a frame")]
    Truncated,
}

/// Reads the next frame. `Ok(None)` when the peer closed the connection between frames.
/// The size is checked against `max_bytes` before anything is allocated, and the buffer grows
/// only as bytes arrive.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_bytes: usize,
) -> Result<Option<BytesMut>, FrameError> {
    let mut size_buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = reader.read(&mut size_buf[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        got += n;
    }
    let size = i32::from_be_bytes(size_buf);
    if size < 0 {
        return Err(FrameError::NegativeSize { size });
    }
    let size_usize = size as usize;
    if size_usize > max_bytes {
        return Err(FrameError::TooLarge {
            size,
            max: max_bytes,
        });
    }
    let mut buf = BytesMut::with_capacity(size_usize.min(GROW_STEP));
    while buf.len() < size_usize {
        let want = (size_usize - buf.len()).min(GROW_STEP);
        buf.reserve(want);
        let n = (&mut *reader).take(want as u64).read_buf(&mut buf).await?;
        if n == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8], max: usize) -> Result<Option<BytesMut>, FrameError> {
        let mut r = bytes;
        read_frame(&mut r, max).await
    }

    #[tokio::test]
    async fn frames_and_their_failures() {
        assert_eq!(
            &read(&[0, 0, 0, 3, 1, 2, 3], 10).await.unwrap().unwrap()[..],
            &[1, 2, 3]
        );
        assert!(read(&[], 10).await.unwrap().is_none());
        assert!(matches!(
            read(&[0, 0], 10).await,
            Err(FrameError::Truncated)
        ));
        assert!(matches!(
            read(&[0, 0, 0, 5, 1], 10).await,
            Err(FrameError::Truncated)
        ));
        assert!(matches!(
            read(&[0xff, 0, 0, 0], 10).await,
            Err(FrameError::NegativeSize { .. })
        ));
        assert!(matches!(
            read(&[0x7f, 0xff, 0xff, 0xff], 100).await,
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(read(&[0, 0, 0, 0], 10).await.unwrap().unwrap().len(), 0);
        // A large frame arrives whole.
        let mut big = vec![0, 3, 0, 0];
        big.extend(std::iter::repeat_n(7u8, 3 << 16));
        assert_eq!(read(&big, 1 << 20).await.unwrap().unwrap().len(), 3 << 16);
    }
}
