"""The local-filesystem seam: rules for files the operator hands us (key files) and, later, files we write."""
