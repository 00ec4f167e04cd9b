"""What granting an organisation-wide agent slot costs in the engine's slot table."""
