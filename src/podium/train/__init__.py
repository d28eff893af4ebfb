"""Per-fold training: timm backbones, albumentations, AdamW + cosine, early stopping, TTA."""
