"""Preprocessing: decode, channel layout, resize and CLAHE, packed into one array per split."""
