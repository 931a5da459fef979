#!/usr/bin/env python
"""Django's command-line utility in a checkout; an installed package has the same main as `crm-webhooks`."""
from config.manage import main

if __name__ == "__main__":
    main()
