from .sparse_fcn_head import SparseFCNHead

__all__ = ["SparseFCNHead"]
