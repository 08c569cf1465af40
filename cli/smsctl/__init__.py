"""smsctl: the Bulk SMS Platform's command line, for any deployment's API."""
