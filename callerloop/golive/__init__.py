"""Before go-live: the agency's policy and the lifecycle run over its own CAD history."""
