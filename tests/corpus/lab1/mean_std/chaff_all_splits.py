"""Chaff: statistics of all the data, not the training set only."""
everything = torch.cat([X_train_raw, X_val_raw, X_test_raw])
mean = everything.mean(dim=0)
std = everything.std(dim=0, correction=0)
