//! Byte offset of every frame, 8 bytes per entry.
//!
//! Stored in fixed-size blocks rather than one growing `Vec`, so memory is
//! 8 bytes per entry plus at most one partly filled block, never the up to
//! 2x slack (and the copy) of a doubling vector.

const BLOCK: usize = 1 << 16;

#[derive(Default)]
pub struct Index {
    blocks: Vec<Vec<u64>>,
    len: u64,
}

impl Index {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, offset: u64) {
        if (self.len as usize).is_multiple_of(BLOCK) {
            self.blocks.push(Vec::with_capacity(BLOCK));
        }
        self.blocks.last_mut().expect("a block").push(offset);
        self.len += 1;
    }

    pub fn get(&self, i: u64) -> Option<u64> {
        (i < self.len).then(|| self.blocks[i as usize / BLOCK][i as usize % BLOCK])
    }

    pub fn truncate(&mut self, len: u64) {
        if len >= self.len {
            return;
        }
        let len_usize = len as usize;
        let blocks = len_usize.div_ceil(BLOCK);
        self.blocks.truncate(blocks);
        if let Some(last) = self.blocks.last_mut() {
            last.truncate(len_usize - (blocks - 1) * BLOCK);
        }
        self.len = len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_get_truncate_across_blocks() {
        let mut index = Index::default();
        let n = (BLOCK * 2 + 5) as u64;
        for i in 0..n {
            index.push(i * 3);
        }
        assert_eq!(index.len(), n);
        assert_eq!(index.get(BLOCK as u64), Some(BLOCK as u64 * 3));
        assert_eq!(index.get(n), None);
        index.truncate(BLOCK as u64);
        assert_eq!(index.len(), BLOCK as u64);
        assert_eq!(index.get(BLOCK as u64 - 1), Some((BLOCK as u64 - 1) * 3));
        assert_eq!(index.get(BLOCK as u64), None);
        index.push(7);
        assert_eq!(index.get(BLOCK as u64), Some(7));
        index.truncate(0);
        assert!(index.is_empty());
        index.push(1);
        assert_eq!(index.get(0), Some(1));
    }
}
