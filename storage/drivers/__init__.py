"""Storage pool drivers (no Django): ``base`` is the contract, ``libvirt`` the implementation."""
