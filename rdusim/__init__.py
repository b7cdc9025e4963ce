"""rdusim: a discrete-event simulator of the SN40L RDU against DGX GPU systems."""

__version__ = "0.1.0"
