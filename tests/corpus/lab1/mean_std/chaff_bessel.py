"""Chaff: torch.std's default Bessel correction (1/(N-1)) where the text asks for 1/N."""
mean = X_train_raw.mean(dim=0)
std = X_train_raw.std(dim=0)
