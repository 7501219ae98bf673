"""Process plumbing: shared-memory frame rings, the control block and the supervisor."""
