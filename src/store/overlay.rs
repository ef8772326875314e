//! A redb storage backend that reads a file and keeps every write in memory.
//!
//! Used for a trial open: redb's writable open, a commit and a close run
//! against the real file's bytes exactly as start-up would run them, so
//! damage that makes redb fail or panic when it writes (a broken allocator
//! state) shows up before anything opens the file for writing. The file
//! itself is only ever read.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

/// The unit in which written bytes are kept (redb's page size).
const BLOCK: u64 = 4096;

/// The file's bytes, with writes laid over them in memory.
#[derive(Debug)]
pub struct Overlay {
    file: File,
    file_len: u64,
    state: Mutex<State>,
}

/// What the trial changed: the length it set, the blocks it wrote.
#[derive(Debug)]
struct State {
    len: u64,
    blocks: HashMap<u64, Box<[u8]>>,
}

impl Overlay {
    /// Reads `file`, whose length is `file_len`, and never writes it.
    pub fn new(file: File, file_len: u64) -> Overlay {
        Overlay { file, file_len, state: Mutex::new(State { len: file_len, blocks: HashMap::new() }) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic inside redb while it held the lock leaves the map whole: every change is one insert or copy.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fills `out` from the file at `offset`; zeros past the file's end (as a grown file reads).
    fn read_file(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let in_file =
            usize::try_from(self.file_len.saturating_sub(offset)).unwrap_or(usize::MAX).min(out.len());
        let (head, tail) = out.split_at_mut(in_file);
        self.file.read_exact_at(head, offset)?;
        tail.fill(0);
        Ok(())
    }
}

/// The pieces of `len` bytes from `offset`, one per block: (block, offset in it, offset in the buffer, length).
fn pieces(offset: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize, usize)> {
    let mut done = 0usize;
    std::iter::from_fn(move || {
        if done >= len {
            return None;
        }
        let at = offset + done as u64;
        let within = (at % BLOCK) as usize; // < BLOCK
        let n = (BLOCK as usize - within).min(len - done);
        let piece = (at / BLOCK, within, done, n);
        done += n;
        Some(piece)
    })
}

impl redb::StorageBackend for Overlay {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let state = self.state();
        if offset.checked_add(out.len() as u64).is_none_or(|end| end > state.len) {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"));
        }
        for (block, within, at, n) in pieces(offset, out.len()) {
            let dst = out.get_mut(at..at + n).ok_or_else(bounds)?;
            match state.blocks.get(&block) {
                Some(b) => dst.copy_from_slice(b.get(within..within + n).ok_or_else(bounds)?),
                None => self.read_file(offset + at as u64, dst)?,
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.state().len = len;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        for (block, within, at, n) in pieces(offset, data.len()) {
            let b = match state.blocks.entry(block) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let mut fresh = vec![0u8; BLOCK as usize].into_boxed_slice();
                    self.read_file(block * BLOCK, &mut fresh)?;
                    e.insert(fresh)
                }
            };
            b.get_mut(within..within + n)
                .ok_or_else(bounds)?
                .copy_from_slice(data.get(at..at + n).ok_or_else(bounds)?);
        }
        Ok(())
    }
}

fn bounds() -> io::Error {
    io::Error::other("overlay: offset out of bounds")
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::StorageBackend;

    fn overlay_of(bytes: &[u8]) -> (tempfile::NamedTempFile, Overlay) {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), bytes).unwrap();
        let file = File::open(f.path()).unwrap();
        (f, Overlay::new(file, bytes.len() as u64))
    }

    #[test]
    fn writes_stay_in_memory_and_read_back_across_blocks() {
        let original: Vec<u8> = (0..3 * BLOCK as usize).map(|i| (i % 251) as u8).collect();
        let (f, o) = overlay_of(&original);
        o.write(BLOCK - 2, &[9; 5]).unwrap();
        let mut out = vec![0; 9];
        o.read(BLOCK - 4, &mut out).unwrap();
        let mut expected = original[BLOCK as usize - 4..BLOCK as usize + 5].to_vec();
        expected[2..7].fill(9);
        assert_eq!(out, expected);
        assert_eq!(std::fs::read(f.path()).unwrap(), original, "the file was written");
    }

    #[test]
    fn a_grown_length_reads_zeros_and_reads_past_it_fail() {
        let (_f, o) = overlay_of(&[7; 100]);
        o.set_len(2 * BLOCK).unwrap();
        assert_eq!(o.len().unwrap(), 2 * BLOCK);
        let mut out = vec![1; 8];
        o.read(96, &mut out).unwrap();
        assert_eq!(out, [7, 7, 7, 7, 0, 0, 0, 0]);
        assert!(o.read(2 * BLOCK - 4, &mut out).is_err());
    }

    #[test]
    fn pieces_split_at_block_edges() {
        let p: Vec<_> = pieces(BLOCK - 1, 3).collect();
        assert_eq!(p, [(0, BLOCK as usize - 1, 0, 1), (1, 0, 1, 2)]);
        assert_eq!(pieces(5, 0).count(), 0);
    }
}
