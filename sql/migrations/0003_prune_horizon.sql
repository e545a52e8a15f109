-- Migration 3: how far `prune` has deleted, so that `reparse` does not bring
-- pruned reports back from inputs that were kept (an input received recently
-- can hold a copy of a report that ended long ago).

CREATE TABLE prune_horizon (
    -- Reports that ended before this (Unix seconds) were deleted by `prune`;
    -- `reparse` does not store such reports again. At most one row.
    before INTEGER NOT NULL
);
