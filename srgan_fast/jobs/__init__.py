"""Long jobs: resumable video segments, local worker processes and Ray (see ``segments``)."""
