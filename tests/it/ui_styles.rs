//! Issue 21 §14/§15: every pane's style-aware snapshot (each row's cells run-length encoded by
//! foreground, background and modifiers, beside the text), each drawn to an SVG under
//! docs/screens/ that these tests keep current (stale: fail; `UPDATE_SCREENS=1` rewrites), and
//! no cell in a grey (palette 8, DarkGray) foreground.

use crate::common::ui as ui_support;

use ui_support::*;

const SCREENS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screens");

#[test]
fn every_pane_has_a_style_snapshot() {
    for (name, s) in every_pane() {
        insta::assert_snapshot!(
            format!("styles_{name}_80x24"),
            render_styled(&s, 80, 24, now(40.0))
        );
    }
}

#[test]
fn the_screens_in_docs_are_current() {
    let update = std::env::var_os("UPDATE_SCREENS").is_some_and(|v| v == "1");
    let dir = std::path::Path::new(SCREENS);
    if update {
        std::fs::create_dir_all(dir).unwrap();
    }
    let mut stale = vec![];
    let mut names = vec![];
    for (name, s) in every_pane() {
        let svg = screen_svg(&buffer(&s, 80, 24, now(40.0)));
        let path = dir.join(format!("{name}.svg"));
        names.push(format!("{name}.svg"));
        if update {
            std::fs::write(&path, &svg).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(svg.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    // A screen no pane draws any more is stale too.
    for e in std::fs::read_dir(dir).unwrap() {
        let f = e.unwrap().file_name().to_string_lossy().into_owned();
        if f.ends_with(".svg") && !names.contains(&f) {
            if update {
                std::fs::remove_file(dir.join(&f)).unwrap();
            } else {
                stale.push(format!("{SCREENS}/{f} (no pane draws it)"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale screens (run `UPDATE_SCREENS=1 cargo test --test it ui_styles` and review the diff):\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_svg_keeps_each_cell_s_text_and_style() {
    let s = at_subscription();
    let svg = screen_svg(&buffer(&s, 80, 24, now(4.0)));
    assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
    // The highlighted row is reversed: a light background behind its text.
    assert!(
        svg.contains("fill=\"#d4d4d4\"/>"),
        "a reversed run's background"
    );
    assert!(svg.contains(">Contoso Production"), "{svg}");
    // Text is escaped.
    assert!(!svg.contains("<>"));
}

/// Issue 21 §15: grey (palette colour 8, DarkGray; and 7/Gray, as dim on light themes) is
/// unreadable on some themes: secondary text is dim or italic instead, on every pane, with
/// colour and without.
#[test]
fn no_cell_is_drawn_in_grey() {
    use ratatui::style::Color;
    let grey = |c: Color| {
        matches!(
            c,
            Color::DarkGray | Color::Indexed(8) | Color::Gray | Color::Indexed(7)
        )
    };
    for (name, mut s) in every_pane() {
        for color in [true, false] {
            s.color = color;
            let buf = buffer(&s, 80, 24, now(40.0));
            for y in 0..buf.area.height {
                for x in 0..buf.area.width {
                    let c = &buf[(x, y)];
                    assert!(
                        !grey(c.fg) && !grey(c.bg),
                        "{name} (colour {color}) at {x},{y} {:?}: {}",
                        c.symbol(),
                        style_code(c)
                    );
                }
            }
        }
    }
    // The legend and placeholders are still set apart: by the dim modifier.
    let s = at_subscription();
    let styled = render_styled(&s, 80, 24, now(4.0));
    assert!(
        styled.contains(" DI,") || styled.contains(" DI\n"),
        "the filter's placeholder is dim italic:\n{styled}"
    );
    assert!(
        styled.contains(" D,") || styled.contains(" D\n"),
        "the legend is dim:\n{styled}"
    );
}

/// README shows the screens: every SVG is linked from it, and every link names one that exists.
#[test]
fn readme_links_every_screen() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut linked = vec![];
    let mut rest = readme.as_str();
    while let Some(i) = rest.find("(docs/screens/") {
        rest = &rest[i + "(docs/screens/".len()..];
        let end = rest.find(')').expect("a closed link");
        linked.push(rest[..end].to_string());
    }
    for (name, _) in every_pane() {
        let f = format!("{name}.svg");
        assert!(linked.contains(&f), "README does not show docs/screens/{f}");
    }
    for f in &linked {
        assert!(
            std::path::Path::new(SCREENS).join(f).exists(),
            "README links docs/screens/{f}, which no test draws"
        );
    }
}
