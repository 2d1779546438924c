-- The downlink also sends each node its room's announcements (snapshot kind `announcements`).
ALTER TABLE node_snapshots DROP CONSTRAINT IF EXISTS node_snapshots_kind_check;
ALTER TABLE node_snapshots ADD CONSTRAINT node_snapshots_kind_check
    CHECK (kind IN ('timetable', 'roster', 'keys', 'manifest', 'announcements'));
