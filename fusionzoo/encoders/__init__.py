"""Encoders (timm image models, transformers text models) and the token-feature cache."""
