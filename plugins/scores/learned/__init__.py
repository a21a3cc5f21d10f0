"""Learned and user-supplied scores: the paper's trained DDPM network (``ddpm_mlp``), the fully memorized
empirical score (``empirical``) and any ``torch.nn.Module`` (``network``)."""
