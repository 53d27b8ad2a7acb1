"""Alert quality: precision, recall, detection and reset of pages against incidents."""
