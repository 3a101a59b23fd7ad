"""sitoo_sync: keeps a data warehouse in step with the Sitoo retail platform."""

__version__ = "0.1.0"
