"""podium: an image competition folder in, a stacked and post-processed submission out."""

__version__ = "0.1.0"
