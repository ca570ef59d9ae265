"""The Z→μμ analysis of ``examples/zmumu/analysis_nominal.py``, written for ROOT's RDataFrame.

``highrate run examples/zmumu_rdf/analysis.py --datasets ...`` runs it on the same datasets, with
the same executors, and writes the same outputs: highrate calls ``build(df, dataset)`` once per
file (or once per dataset with DistRDF on Dask) with a ``ROOT.RDataFrame`` over it, and runs the
results it returns. Named filters are the cutflow: ``skim/...`` and ``presel/...`` count as the
skim and the preselection. Keys ``(histogram, category)`` give the output's layout.
Needs ``pip install 'highrate[rdf]'``. NanoAOD v12 (``Jet_jetId``) only.
"""

# the two leading good muons' invariant mass, in double precision with the formula of
# highrate.kinematics.pair_mass; NaN with fewer than two good muons
PAIR_MASS = """
if (MuonGood_pt.size() < 2) return std::nan("");
const double pt1 = MuonGood_pt[0], eta1 = MuonGood_eta[0], phi1 = MuonGood_phi[0], m1 = MuonGood_mass[0];
const double pt2 = MuonGood_pt[1], eta2 = MuonGood_eta[1], phi2 = MuonGood_phi[1], m2 = MuonGood_mass[1];
const double s1 = std::sinh(eta1), s2 = std::sinh(eta2);
const double e1 = std::sqrt(pt1 * pt1 * (1 + s1 * s1) + m1 * m1);
const double e2 = std::sqrt(pt2 * pt2 * (1 + s2 * s2) + m2 * m2);
const double dot = pt1 * pt2 * (std::cos(phi1 - phi2) + s1 * s2);
return std::sqrt(std::max(m1 * m1 + m2 * m2 + 2 * (e1 * e2 - dot), 0.0));
"""

HISTOGRAMS = {  # name: (column, bins, low, high, axis title in TLatex)
    "mll": ("mll", 120, 60, 120, "m_{#mu#mu} [GeV]"),
    "MuonGood_pt_1": ("MuonGood_pt_1", 100, 0, 200, "Leading muon p_{T} [GeV]"),
    "MuonGood_eta_1": ("MuonGood_eta_1", 50, -2.5, 2.5, "Leading muon #eta"),
    "MuonGood_phi_1": ("MuonGood_phi_1", 64, -3.2, 3.2, "Leading muon #phi"),
    "nJetGood": ("nJetGood", 10, 0, 10, "Number of good jets"),
    "JetGood_pt_1": ("JetGood_pt_1", 100, 0, 500, "Leading jet p_{T} [GeV]"),
}


def build(df, dataset):
    skim = (
        df.Filter("PV_npvsGood > 0", "skim/PV_npvsGood")
        .Filter("Flag_goodVertices", "skim/goodVertices")
        .Filter("ROOT::VecOps::Any(Muon_pt > 18)", "skim/muon_pt18")
        .Filter("HLT_IsoMu24", "skim/HLT_IsoMu24")
    )
    objects = (
        skim.Define("muon_good", "Muon_tightId && Muon_pfRelIso04_all < 0.15f && Muon_pt > 15 && abs(Muon_eta) < 2.4f")
        .Define("MuonGood_pt", "Muon_pt[muon_good]")
        .Define("MuonGood_eta", "Muon_eta[muon_good]")
        .Define("MuonGood_phi", "Muon_phi[muon_good]")
        .Define("MuonGood_mass", "Muon_mass[muon_good]")
        .Define("MuonGood_charge", "Muon_charge[muon_good]")
        .Define("jet_good", "Jet_pt > 30 && abs(Jet_eta) < 2.4f && (Jet_jetId & 2) > 0")
        .Define("JetGood_pt", "Jet_pt[jet_good]")
        .Define("nJetGood", "int(JetGood_pt.size())")
        .Define("mll", PAIR_MASS)
    )
    selected = (
        objects.Filter("MuonGood_pt.size() == 2 && MuonGood_pt[0] > 25 && MuonGood_charge[0] * MuonGood_charge[1] < 0"
                       " && mll > 60 && mll < 120", "presel/dilepton")
        .Define("MuonGood_pt_1", "MuonGood_pt[0]")
        .Define("MuonGood_eta_1", "MuonGood_eta[0]")
        .Define("MuonGood_phi_1", "MuonGood_phi[0]")
        .Define("JetGood_pt_1", "JetGood_pt.size() > 0 ? JetGood_pt[0] : -999.f")
    )
    weight = ("genWeight",) if dataset.is_mc else ()  # data: unweighted
    booked = {}
    for name, (column, bins, low, high, title) in HISTOGRAMS.items():
        node = selected.Filter("nJetGood > 0") if name == "JetGood_pt_1" else selected  # unnamed: not in the cutflow
        booked[(name, "baseline")] = node.Histo1D((name, f";{title};Events", bins, low, high), column, *weight)
    return booked
