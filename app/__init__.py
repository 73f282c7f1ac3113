"""The vggt_t_mv application: capture ingestion, pipeline, viewer and export (built in later issues)."""
