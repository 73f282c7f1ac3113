"""Code the tests share (builders of captures, reconstructions, import graphs); not tests themselves."""
