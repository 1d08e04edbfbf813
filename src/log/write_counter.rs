//! Tracks whether a file has writes its last sync did not cover, when writes may land while a
//! sync is in flight: a sync marks only what was written before it started.

/// Counts writes to one file and the count its last completed sync covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounter {
    /// Writes so far.
    written: u64,
    /// `written` as it was when the last completed sync started.
    synced: u64,
}

impl WriteCounter {
    /// A file with nothing to sync.
    pub fn clean() -> WriteCounter {
        WriteCounter::default()
    }

    /// A file with writes to sync.
    pub fn dirty() -> WriteCounter {
        WriteCounter {
            written: 1,
            synced: 0,
        }
    }

    /// Records a write.
    pub fn touch(&mut self) {
        self.written += 1;
    }

    /// Whether some write is not covered by a completed sync.
    pub fn is_dirty(&self) -> bool {
        self.written > self.synced
    }

    /// What a sync starting now will cover.
    pub fn snapshot(&self) -> u64 {
        self.written
    }

    /// Records that a sync which started at `snapshot` completed.
    pub fn mark_synced(&mut self, snapshot: u64) {
        self.synced = self.synced.max(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_during_a_sync_stays_dirty() {
        let mut c = WriteCounter::clean();
        assert!(!c.is_dirty());
        c.touch();
        let snap = c.snapshot();
        c.touch(); // lands while the sync is in flight
        c.mark_synced(snap);
        assert!(c.is_dirty());
        c.mark_synced(c.snapshot());
        assert!(!c.is_dirty());
    }
}
