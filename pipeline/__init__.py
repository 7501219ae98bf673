"""Ground floor: shared-memory rings, the control block, the child skeleton, the supervisor."""
