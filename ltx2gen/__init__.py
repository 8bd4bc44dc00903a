"""ltx2gen: staged, memory-managed LTX-2 text-to-video-with-audio generation."""
