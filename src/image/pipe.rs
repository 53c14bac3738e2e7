//! A bounded pipe of byte chunks between two threads, so the stages of a pipeline (tar, zstd,
//! sha256, network) run in parallel. The writer must call [`ChunkWriter::finish`]: a reader
//! whose writer went away without finishing gets an error, never a silently short stream.

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

enum Msg {
    Data(Vec<u8>),
    End,
}

/// Creates a pipe holding at most `depth` chunks of `chunk` bytes.
pub fn chunk_pipe(depth: usize, chunk: usize) -> (ChunkWriter, ChunkReader) {
    let (tx, rx) = sync_channel(depth);
    (
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(chunk),
            chunk,
        },
        ChunkReader {
            rx,
            cur: Vec::new(),
            pos: 0,
            ended: false,
        },
    )
}

pub struct ChunkWriter {
    tx: SyncSender<Msg>,
    buf: Vec<u8>,
    chunk: usize,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the next pipeline stage stopped")
}

impl ChunkWriter {
    fn send_buf(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk));
            self.tx.send(Msg::Data(full)).map_err(|_| closed())?;
        }
        Ok(())
    }

    /// Sends what is buffered and marks the end of the stream.
    pub fn finish(mut self) -> io::Result<()> {
        self.send_buf()?;
        self.tx.send(Msg::End).map_err(|_| closed())
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.chunk - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.chunk {
            self.send_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub struct ChunkReader {
    rx: Receiver<Msg>,
    cur: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl ChunkReader {
    /// The next whole chunk (`None` at the end), for consumers that handle chunks themselves.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.pos < self.cur.len() {
            let rest = self.cur.split_off(self.pos);
            self.cur.clear();
            self.pos = 0;
            return Ok(Some(rest));
        }
        if self.ended {
            return Ok(None);
        }
        match self.rx.recv() {
            Ok(Msg::Data(d)) => Ok(Some(d)),
            Ok(Msg::End) => {
                self.ended = true;
                Ok(None)
            }
            Err(_) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the previous pipeline stage stopped before the end of the stream",
            )),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.cur.len() {
            match self.next_chunk()? {
                Some(c) => {
                    self.cur = c;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_bytes_in_order() {
        let (mut w, mut r) = chunk_pipe(2, 7);
        let t = std::thread::spawn(move || {
            for i in 0..100u8 {
                w.write_all(&[i; 13]).unwrap();
            }
            w.finish().unwrap();
        });
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        t.join().unwrap();
        assert_eq!(out.len(), 1300);
        assert!(
            out.chunks(13)
                .enumerate()
                .all(|(i, c)| c.iter().all(|&b| b as usize == i))
        );
    }

    #[test]
    fn unfinished_writer_is_an_error() {
        let (mut w, mut r) = chunk_pipe(2, 4);
        w.write_all(b"abcdefgh").unwrap();
        drop(w);
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
