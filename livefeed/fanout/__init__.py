"""Live fan-out: the hub, one reader's subscription, and the open readers of a process."""
