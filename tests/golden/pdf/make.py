#!/usr/bin/env python3
"""The PDF test set for sift-inputs' `pdf` feature (issue 31), and poppler's renders of it.

Writes, under tests/golden/pdf/:

    text.pdf        2 pages, US Letter: standard-14 fonts that are not embedded (Helvetica, Times,
                    Courier, so the renderer must bring its own), then a page stored landscape
                    with /Rotate 90, set in a subset TrueType font that is embedded (DejaVu Sans:
                    accents, Greek, Cyrillic), with rotated text
    slide.pdf       1 page, 16:9: a title on a gradient band (an axial shading), a bar chart
                    with axes and a legend, a half-transparent shape
    scan.pdf        1 page, A4: one greyscale JPEG (a page of text scanned at 100 dpi: tilted,
                    slightly blurred, grey paper, JPEG artefacts), nothing else
    report.pdf      4 pages, A4: headings, paragraphs, a bulleted list, a table, a line chart,
                    page numbers
    restricted.pdf  slide.pdf encrypted (AES-256) with an owner password only: opens and renders
                    without a password, as PDF readers do
    encrypted.pdf   report.pdf encrypted (AES-256) with the user password "sift": cannot be
                    opened
    damaged.pdf     report.pdf with its cross-reference table, trailer and every page object
                    overwritten: no page can be found
    truncated.pdf   report.pdf cut at 60%: the cross-reference table is gone, the first pages
                    are still there and are recovered (hayro and poppler both rebuild the table)
    ref/<name>-<page>.webp
                    pdftoppm's render of each page of text, slide, scan and report, at the size
                    sift renders it for the model (smart_resize of the page, see `render_size`),
                    as lossless WebP (half the bytes of PNG), greyscale where the render is grey.
                    restricted.pdf has none: the test checks it renders as slide.pdf does

Every PDF is reproducible: reportlab runs in invariant mode (no dates, fixed document IDs), the
scan's noise has a fixed seed, and qpdf encrypts with --static-id and --static-aes-iv.

Run from the repository root with reportlab, numpy and Pillow installed, and qpdf and poppler-utils
(pdftoppm, pdfinfo) on the PATH (Debian: apt-get install qpdf poppler-utils), plus the DejaVu fonts
(fonts-dejavu-core) and, for --ssim only, ghostscript:

    pip install reportlab==5.1.0 numpy pillow
    python3 tests/golden/pdf/make.py            # the PDFs and the references
    python3 tests/golden/pdf/make.py --ssim DIR # also: the SSIM table of docs/pdf.md, from
                                                # sift's renders in DIR (SIFT_PDF_RENDERS=DIR
                                                # cargo test -p sift-inputs --features pdf --test pdf)

Tested with reportlab 5.1.0, Pillow 13.0.0, numpy 2.4.6, qpdf 11.3.0, poppler 22.12.0 and
ghostscript 10.00.0 (Debian 12).
"""

import io
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from reportlab import rl_config

rl_config.invariant = 1  # before anything draws: no creation date, a fixed document ID

from reportlab.graphics import renderPDF  # noqa: E402
from reportlab.graphics.charts.barcharts import VerticalBarChart  # noqa: E402
from reportlab.graphics.charts.legends import Legend  # noqa: E402
from reportlab.graphics.charts.lineplots import LinePlot  # noqa: E402
from reportlab.graphics.shapes import Drawing, String  # noqa: E402
from reportlab.lib import colors  # noqa: E402
from reportlab.lib.pagesizes import A4, letter  # noqa: E402
from reportlab.lib.styles import getSampleStyleSheet  # noqa: E402
from reportlab.lib.units import cm  # noqa: E402
from reportlab.lib.utils import ImageReader  # noqa: E402
from reportlab.pdfbase import pdfmetrics  # noqa: E402
from reportlab.pdfbase.ttfonts import TTFont  # noqa: E402
from reportlab.pdfgen import canvas  # noqa: E402
from reportlab.platypus import (  # noqa: E402
    ListFlowable,
    ListItem,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

OUT = Path(__file__).resolve().parent
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")

# sift's model budget (ImageOptions::default, spec 4.1), the size of the committed references.
MAX_PIXELS = 1800 * 32 * 32
MIN_PIXELS = 4 * 32 * 32
FACTOR = 32

WORDS = (
    "the quarterly revenue of the northern region grew faster than expected while operating costs "
    "stayed flat and the board approved a second production line for the coming year after a long "
    "review of supply contracts energy prices staffing plans and the results of the customer survey"
).split()


def sentences(seed, count):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 18))]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def make_text(path):
    c = canvas.Canvas(str(path), pagesize=letter, invariant=1)
    w, h = letter
    c.setTitle("sift text test")
    c.setFont("Helvetica-Bold", 22)
    c.drawString(72, h - 90, "Annual operations review")
    c.setFont("Helvetica", 12)
    c.drawString(72, h - 112, "Standard-14 fonts, not embedded: Helvetica, Times-Roman, Courier.")
    text = c.beginText(72, h - 150)
    text.setFont("Times-Roman", 11.5)
    text.setLeading(15)
    body = sentences(1, 14)
    line = ""
    for word in body.split():
        if c.stringWidth(line + " " + word, "Times-Roman", 11.5) > w - 144:
            text.textLine(line)
            line = word
        else:
            line = (line + " " + word).strip()
    text.textLine(line)
    c.drawText(text)
    c.setFont("Times-Bold", 14)
    c.drawString(72, h - 420, "Figures in Times-Bold, code in Courier")
    c.setFont("Courier", 10)
    for i, row in enumerate(
        [
            "fn main() {",
            '    let pages = pdf.page_count(); // 1-based in the request: "1-5,9"',
            '    println!("{pages} pages");',
            "}",
        ]
    ):
        c.drawString(90, h - 450 - i * 13, row)
    c.setFont("Helvetica-Oblique", 10)
    c.drawString(72, 60, "Page 1 of 2 - Helvetica-Oblique footer")
    c.showPage()

    # Page 2: reportlab stores a /Rotate 90 page with its MediaBox turned (792 x 612), so it shows
    # as portrait, as a portrait page scanned or printed landscape is stored. Its content is
    # drawn turned a quarter counter-clockwise from the page's bottom-right corner, so that it
    # reads upright on the page as shown (612 wide, 792 high).
    pdfmetrics.registerFont(TTFont("DejaVuSans", str(DEJAVU / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(DEJAVU / "DejaVuSans-Bold.ttf")))
    c.setPageRotation(90)
    c.translate(h, 0)
    c.rotate(90)
    c.setFont("DejaVuSans-Bold", 20)
    c.drawString(60, h - 80, "Embedded TrueType, page rotated 90°")
    c.setFont("DejaVuSans", 13)
    lines = [
        "Français: les résultats trimestriels dépassent les prévisions.",
        "Deutsch: Die Straße führt über die Brücke nach Köln.",
        "Ελληνικά: Τα αποτελέσματα του τριμήνου ξεπέρασαν τις προβλέψεις.",
        "Русский: Квартальные результаты превзошли прогнозы.",
        "Symbols: ≤ ≥ ± × ÷ € £ ¥ © ® ™ → ← ∑ √ ∞",
    ]
    for i, s in enumerate(lines):
        c.drawString(60, h - 130 - i * 26, s)
    c.saveState()
    c.translate(w - 260, 200)
    c.rotate(30)
    c.setFillColor(colors.HexColor("#b03030"))
    c.setFont("DejaVuSans-Bold", 28)
    c.drawString(0, 0, "DRAFT")
    c.restoreState()
    c.setFont("DejaVuSans", 9)
    c.drawString(60, 40, "Page 2 of 2")
    c.showPage()
    c.save()


def make_slide(path):
    size = (960, 540)
    c = canvas.Canvas(str(path), pagesize=size, invariant=1)
    w, h = size
    c.saveState()
    band = c.beginPath()
    band.rect(0, h - 110, w, 110)
    c.clipPath(band, stroke=0, fill=0)
    c.linearGradient(0, h - 110, w, h, (colors.HexColor("#1f3b73"), colors.HexColor("#3f7cc0")))
    c.restoreState()
    c.setFillColor(colors.white)
    c.setFont("Helvetica-Bold", 34)
    c.drawString(48, h - 72, "Q3 results: revenue by region")
    c.setFillColor(colors.black)
    c.setFont("Helvetica", 18)
    for i, s in enumerate(
        [
            "North grew 24% on the new line",
            "South flat; costs down 6%",
            "East and West within plan",
            "Outlook: raise full-year guidance",
        ]
    ):
        c.circle(60, h - 160 - i * 44 + 6, 4, fill=1, stroke=0)
        c.drawString(74, h - 160 - i * 44, s)

    d = Drawing(470, 360)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 50, 60, 380, 260
    chart.data = [(12.1, 9.8, 7.4, 8.9), (15.0, 9.9, 7.9, 9.3)]
    chart.categoryAxis.categoryNames = ["North", "South", "East", "West"]
    chart.valueAxis.valueMin = 0
    chart.valueAxis.valueMax = 16
    chart.valueAxis.valueStep = 4
    chart.bars[0].fillColor = colors.HexColor("#9bb7d9")
    chart.bars[1].fillColor = colors.HexColor("#1f3b73")
    chart.categoryAxis.labels.fontSize = 12
    chart.valueAxis.labels.fontSize = 11
    chart.barSpacing = 3
    chart.groupSpacing = 14
    d.add(chart)
    legend = Legend()
    legend.x, legend.y = 300, 345
    legend.alignment = "right"
    legend.fontSize = 11
    legend.colorNamePairs = [(chart.bars[0].fillColor, "Q2"), (chart.bars[1].fillColor, "Q3")]
    d.add(legend)
    d.add(String(50, 20, "Revenue, EUR million", fontSize=11))
    renderPDF.draw(d, c, 460, 50)

    c.setFillColor(colors.HexColor("#f0a030"))
    c.setFillAlpha(0.5)
    c.roundRect(40, 40, 380, 90, 12, fill=1, stroke=0)
    c.setFillAlpha(1)
    c.setFillColor(colors.black)
    c.setFont("Helvetica-Bold", 16)
    c.drawString(56, 92, "Half-transparent call-out box")
    c.setFont("Helvetica", 13)
    c.drawString(56, 66, "drawn over nothing: white background must show through")
    c.showPage()
    c.save()


def scan_image():
    """A page of text as a cheap scanner gives it: 100 dpi greyscale, tilted, grey paper, JPEG
    artefacts."""
    w, h = 827, 1169  # A4 at 100 dpi
    img = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(img)
    title = ImageFont.truetype(str(DEJAVU / "DejaVuSerif-Bold.ttf"), 26)
    body = ImageFont.truetype(str(DEJAVU / "DejaVuSerif.ttf"), 15)
    draw.text((80, 90), "Minutes of the board meeting", font=title, fill=20)
    draw.text((80, 130), "Signed copy, scanned 12 March", font=body, fill=60)
    text = sentences(7, 40).split()
    y, line = 180, ""
    for word in text:
        if draw.textlength(line + " " + word, font=body) > w - 160:
            draw.text((80, y), line, font=body, fill=25)
            y, line = y + 24, word
            if y > h // 2:  # a letter's worth: the rest of the page is blank paper
                break
        else:
            line = (line + " " + word).strip()
    draw.line((480, h // 2 + 110, 700, h // 2 + 90), fill=30, width=3)  # a signature stroke
    img = img.rotate(0.8, resample=Image.BICUBIC, fillcolor=255)
    img = img.filter(ImageFilter.GaussianBlur(0.6))
    # Grey paper, no grain: grain costs hundreds of KB in the lossless reference render, and
    # docs/pdf.md gives the SSIM measured on a grainy version of this page.
    a = np.asarray(img, dtype=np.float32) * 0.92 + 10
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=50, dpi=(100, 100))
    return buf.getvalue()


def make_scan(path):
    c = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    c.drawImage(ImageReader(io.BytesIO(scan_image())), 0, 0, *A4)
    c.showPage()
    c.save()


def make_report(path):
    styles = getSampleStyleSheet()

    def footer(c, doc):
        c.setFont("Helvetica", 9)
        c.drawRightString(A4[0] - 2 * cm, 1.2 * cm, f"Operations report - page {doc.page}")

    story = [Paragraph("Operations report 2026", styles["Title"])]
    for section in range(1, 5):
        story.append(Paragraph(f"{section}. Section {section}: findings", styles["Heading2"]))
        for p in range(3):
            story.append(Paragraph(sentences(100 + section * 10 + p, 6), styles["BodyText"]))
        story.append(
            ListFlowable(
                [ListItem(Paragraph(sentences(200 + section * 10 + i, 1), styles["BodyText"])) for i in range(3)],
                bulletType="bullet",
            )
        )
        if section == 1:
            data = [["Region", "Q1", "Q2", "Q3", "Q4"]] + [
                [r] + [f"{(i * 7 + q * 3) % 11 + 5}.{q}" for q in range(4)]
                for i, r in enumerate(["North", "South", "East", "West", "Central"])
            ]
            t = Table(data, colWidths=[4 * cm] + [2.5 * cm] * 4)
            t.setStyle(
                TableStyle(
                    [
                        ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde6f3")),
                        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                    ]
                )
            )
            story += [Spacer(1, 12), t, Spacer(1, 12)]
        if section == 2:
            d = Drawing(440, 220)
            lp = LinePlot()
            lp.x, lp.y, lp.width, lp.height = 40, 30, 380, 170
            lp.data = [
                [(m, 50 + 10 * math.sin(m / 2) + m * 2) for m in range(1, 13)],
                [(m, 40 + 6 * math.cos(m / 3) + m) for m in range(1, 13)],
            ]
            lp.lines[0].strokeColor = colors.HexColor("#1f3b73")
            lp.lines[1].strokeColor = colors.HexColor("#c04040")
            lp.lines[0].strokeWidth = 2
            lp.lines[1].strokeWidth = 2
            d.add(lp)
            story += [Spacer(1, 12), d]
        story.append(PageBreak() if section < 4 else Spacer(1, 12))
    SimpleDocTemplate(
        str(path), pagesize=A4, invariant=1, title="sift report test"
    ).build(story, onFirstPage=footer, onLaterPages=footer)


def make_damaged(src, path):
    """Overwrites report.pdf's catalog, page tree and page objects, and its cross-reference
    table and trailer, keeping the header, the fonts and the content streams: there is no
    page left for a reader that repairs files to find."""
    data = bytearray(src.read_bytes())

    def wipe(start, end):
        data[start:end] = (b"\x00garbage" * (end - start))[: end - start]

    first_page = data.index(b"/Type /Page\n")
    start = data.rindex(b" 0 obj", 0, first_page)
    start = data.rindex(b"\n", 0, start) + 1
    tree = data.index(b"/Type /Pages")
    end = data.index(b"endobj", tree) + len(b"endobj")
    wipe(start, end)
    wipe(data.rindex(b"\nxref\n"), len(data))
    path.write_bytes(bytes(data))


def qpdf_encrypt(src, path, user, owner):
    subprocess.run(
        ["qpdf", "--static-id", "--static-aes-iv", "--encrypt", user, owner, "256", "--", str(src), str(path)],
        check=True,
    )


def page_sizes(path):
    """Each page's size in points after /Rotate, as (width, height, turned), from pdfinfo;
    turned: /Rotate is 90 or 270."""
    out = subprocess.run(
        ["pdfinfo", "-f", "1", "-l", "9999", str(path)], check=True, capture_output=True, text=True
    ).stdout
    sizes, rots = {}, {}
    for line in out.splitlines():
        if line.startswith("Page") and "size:" in line:
            n = int(line.split()[1])
            parts = line.split("size:")[1].split()
            sizes[n] = (float(parts[0]), float(parts[2]))
        if line.startswith("Page") and "rot:" in line:
            rots[int(line.split()[1])] = int(line.split("rot:")[1])
    result = []
    for n in sorted(sizes):
        w, h = sizes[n]
        turned = rots.get(n, 0) % 180 == 90
        result.append((h, w, True) if turned else (w, h, False))
    return result


def smart_resize(height, width, factor, min_pixels, max_pixels):
    """qwen-vl-utils 0.0.14 smart_resize (sift's visual::smart_resize)."""
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def render_size(width_pt, height_pt, max_pixels):
    """sift_inputs::pdf's render size: smart_resize of the page drawn at twice the linear scale
    that fills max_pixels, i.e. what the model makes of the page rendered at any higher
    resolution. Returns (width, height)."""
    scale = 2 * math.sqrt(max_pixels / (width_pt * height_pt))
    h, w = smart_resize(round(height_pt * scale), round(width_pt * scale), FACTOR, MIN_PIXELS, max_pixels)
    return w, h


def pdftoppm(pdf, page, size, turned):
    w, h = size
    # pdftoppm scales the page before turning it: a turned page's output width is its -scale-to-y.
    sx, sy = (h, w) if turned else (w, h)
    png = subprocess.run(
        ["pdftoppm", "-png", "-f", str(page), "-l", str(page), "-scale-to-x", str(sx), "-scale-to-y", str(sy),
         "-singlefile", str(pdf)],
        check=True,
        capture_output=True,
    ).stdout
    img = Image.open(io.BytesIO(png)).convert("RGB")
    if img.size != (w, h):
        sys.exit(f"pdftoppm gave {img.size} for {pdf.name} page {page}, asked {w}x{h}")
    return img


REFERENCED = ["text.pdf", "slide.pdf", "scan.pdf", "report.pdf"]


def gaussian_filter(img):
    """The 11x11 Gaussian window (sigma 1.5) of Wang et al. 2004, 'valid' part only."""
    x = np.arange(11) - 5
    g = np.exp(-(x * x) / (2 * 1.5**2))
    g /= g.sum()
    rows = np.apply_along_axis(lambda r: np.convolve(r, g, "valid"), 1, img)
    return np.apply_along_axis(lambda c: np.convolve(c, g, "valid"), 0, rows)


def ssim(a, b):
    """SSIM of one channel as Wang et al. 2004 define it (K1 0.01, K2 0.03, L 255), at full
    resolution: the mean of the SSIM map over every 11x11 window inside the image. Averaged over
    R, G and B, the same as iqa's `ssim` in crates/sift-inputs/tests/pdf.rs."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ma, mb = gaussian_filter(a), gaussian_filter(b)
    va = gaussian_filter(a * a) - ma * ma
    vb = gaussian_filter(b * b) - mb * mb
    cov = gaussian_filter(a * b) - ma * mb
    return float(np.mean((2 * ma * mb + c1) * (2 * cov + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2))))


def report_ssim(rendered_dir):
    """SSIM (the mean over R, G and B) of sift's renders, rendered_dir/<name>-<page>.png,
    against pdftoppm at the same size; also ghostscript against pdftoppm, for scale."""
    print("| file | page | size | SSIM sift/pdftoppm | SSIM gs/pdftoppm |")
    print("|---|---|---|---|---|")
    for name in REFERENCED:
        pdf = OUT / name
        for page, (_, _, turned) in enumerate(page_sizes(pdf), start=1):
            ours = Image.open(Path(rendered_dir) / f"{name[:-4]}-{page}.png").convert("RGB")
            ref = np.asarray(pdftoppm(pdf, page, ours.size, turned))
            w, h = ours.size
            gs = subprocess.run(
                ["gs", "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=png16m", f"-g{w}x{h}", "-dPDFFitPage",
                 "-dTextAlphaBits=4", "-dGraphicsAlphaBits=4", f"-dFirstPage={page}", f"-dLastPage={page}",
                 "-sOutputFile=-", str(pdf)],
                check=True,
                capture_output=True,
            ).stdout
            gs = np.asarray(Image.open(io.BytesIO(gs)).convert("RGB"))
            ours = np.asarray(ours)
            score = sum(ssim(ours[..., ch], ref[..., ch]) for ch in range(3)) / 3
            score_gs = sum(ssim(gs[..., ch], ref[..., ch]) for ch in range(3)) / 3
            print(f"| {name} | {page} | {w}x{h} | {score:.4f} | {score_gs:.4f} |")


def main():
    make_text(OUT / "text.pdf")
    make_slide(OUT / "slide.pdf")
    make_scan(OUT / "scan.pdf")
    make_report(OUT / "report.pdf")
    qpdf_encrypt(OUT / "slide.pdf", OUT / "restricted.pdf", "", "owner")
    qpdf_encrypt(OUT / "report.pdf", OUT / "encrypted.pdf", "sift", "owner")
    make_damaged(OUT / "report.pdf", OUT / "damaged.pdf")
    report = (OUT / "report.pdf").read_bytes()
    (OUT / "truncated.pdf").write_bytes(report[: len(report) * 6 // 10])

    ref = OUT / "ref"
    ref.mkdir(exist_ok=True)
    for old in ref.iterdir():
        old.unlink()
    for name in REFERENCED:
        pdf = OUT / name
        for page, (w_pt, h_pt, turned) in enumerate(page_sizes(pdf), start=1):
            size = render_size(w_pt, h_pt, MAX_PIXELS)
            img = pdftoppm(pdf, page, size, turned)
            r, g, b = img.split()
            if r.tobytes() == g.tobytes() == b.tobytes():
                img = r  # a grey page stored as greyscale: the same pixels in a third of the bytes
            img.save(ref / f"{name[:-4]}-{page}.webp", lossless=True, quality=100, method=6)

    if len(sys.argv) == 3 and sys.argv[1] == "--ssim":
        report_ssim(sys.argv[2])


if __name__ == "__main__":
    main()
