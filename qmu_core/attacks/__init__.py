"""Membership inference attacks, one module per attack behind `base.Attack`."""
