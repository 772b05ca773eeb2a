import sys

from hf_bio.cli import main

sys.exit(main())
