"""The emergent-class browser: a static HTML site of one analysed run (`hear-sela browse`).

- data.py    `read_analysis(folder)`: an analysis folder of `hear-sela analyze` and its feature cache
- select.py  pure choices: cluster centres, central and borderline members, nearest clusters, label shares
- media.py   audio excerpts (Ogg Vorbis / MP3), log-mel thumbnails and cluster-mean log-mels (WebP)
- pages.py   the HTML of the index skeleton and the cluster pages
- site.py    `build_site(data, out_dir)`: all of it into one folder; static/ comes from hear_sela/assets
"""

from hear_sela.analysis.browse.data import AnalysisFolderError, BrowseData, read_analysis
from hear_sela.analysis.browse.site import BrowseOptions, SiteResult, build_site

__all__ = ["AnalysisFolderError", "BrowseData", "BrowseOptions", "SiteResult", "build_site", "read_analysis"]
