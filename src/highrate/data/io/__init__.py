"""Reading: opening files once per process, file metadata, and column reads for entry ranges."""
