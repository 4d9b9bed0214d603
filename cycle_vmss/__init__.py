"""cycle-vmss: reimage an Azure VM Scale Set one budgeted step at a time."""

__version__ = "1.0.0"
