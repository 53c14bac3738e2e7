//! A synthetic region for the fleet benchmark: lycées with rooms, models and devices, written
//! as the texts of real workspaces (site.toml, models.toml, devices.csv, rooms/*.toml) so that
//! the benchmark parses them like parc does. Deterministic (a seeded xorshift generator).

use std::fmt::Write as _;

use crate::domain::finding::Source;
use crate::domain::workspace::Sources;

/// The size of the region to generate.
#[derive(Debug, Clone, Copy)]
pub struct RegionSize {
    pub lycees: usize,
    pub rooms_per_lycee: usize,
    pub devices_per_room: usize,
}

impl RegionSize {
    /// The P6 target: 300 lycées, 6,000 rooms, 100,000 devices (~16.7 per room on average).
    pub const REGION: RegionSize = RegionSize {
        lycees: 300,
        rooms_per_lycee: 20,
        devices_per_room: 17,
    };
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// (id, year, cpu score, ram GB, form factor, origin) of the region's catalogue.
fn catalogue() -> Vec<(String, u32, u32, u32, &'static str, &'static str)> {
    let mut v = Vec::new();
    for (i, year) in (2012..=2025).enumerate() {
        let cpu = 2000 + 900 * i as u32;
        let ram = if year < 2016 {
            4
        } else if year < 2020 {
            8
        } else {
            16
        };
        v.push((
            format!("fixe-{year}"),
            year,
            cpu,
            ram,
            "desktop",
            if year == 2013 { "assembled" } else { "new" },
        ));
        if year >= 2016 {
            v.push((
                format!("portable-{year}"),
                year,
                cpu * 8 / 10,
                ram,
                "laptop",
                "new",
            ));
        }
        if year >= 2018 && year % 2 == 0 {
            v.push((
                format!("station-{year}"),
                year,
                cpu * 3 / 2,
                ram * 2,
                "desktop",
                "new",
            ));
        }
    }
    v
}

/// The texts of lycée number `n` (0-based) of a region.
pub fn lycee_sources(n: usize, size: RegionSize, seed: u64) -> Sources {
    let mut rng = Rng(seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let cat = catalogue();
    let code = format!("l{n:03}");
    let site = format!(
        "[lycee]\nname = \"Lycée synthétique {n:03}\"\nuai = \"0{:06}S\"\nsector = \"Secteur {:02}\"\n\n\
         [domain]\nrealm = \"{up}.LAN\"\nnetbios = \"{up}\"\ncomputers_ou = \"OU=Salles,DC={code},DC=lan\"\n\
         join_account = \"join\"\n\n[endpoint]\nkind = \"pxe\"\naddress = \"10.0.0.1\"\n",
        840_000 + n,
        n / 3,
        up = code.to_uppercase(),
    );
    let mut models = String::new();
    for (id, year, cpu, ram, ff, origin) in &cat {
        let _ = write!(
            models,
            "[[model]]\nid = \"{id}\"\nmanufacturer = \"Dell\"\nname = \"{id}\"\nform_factor = \"{ff}\"\nyear = {year}\n\
             cpu = \"cpu\"\ncpu_score = {cpu}\nram_gb = {ram}\ndisk_type = \"{}\"\ndisk_gb = 256\ngpu = \"intégré\"\n\
             gpu_dedicated = {}\norigin = \"{origin}\"\n\n",
            if *year < 2016 { "hdd" } else { "ssd" },
            id.starts_with("station"),
        );
    }
    let mut devices =
        String::from("room;hostname;mac;serial;model;purchase_date;warranty_end;funding;state\n");
    let mut rooms = Vec::new();
    let mut host = 0usize;
    for r in 0..size.rooms_per_lycee {
        let room = format!("s{r:02}");
        // Requirements grow with the room's profile; its model is of a random generation.
        let profile = rng.below(4) as u32;
        let (min_ram, min_cpu) = [(4, 2000), (8, 4000), (8, 7000), (16, 10000)][profile as usize];
        let (model, year, ..) = &cat[rng.below(cat.len() as u64) as usize];
        let seats = size.devices_per_room / 2 + rng.below(size.devices_per_room as u64) as usize;
        let text = format!(
            "id = \"{room}\"\nname = \"Salle {r:02}\"\nmodel = \"{model}\"\n\n[os]\nfamily = \"linux\"\nbase_image = \"debian-12\"\n\n\
             [requirements]\nmin_ram_gb = {min_ram}\nmin_cpu_score = {min_cpu}\n"
        );
        rooms.push(Source::new(format!("rooms/{room}.toml"), text));
        let mixed = rng.below(7) == 0;
        for _ in 0..seats {
            host += 1;
            let (m, y) = if mixed && rng.below(4) == 0 {
                let (om, oy, ..) = &cat[rng.below(cat.len() as u64) as usize];
                (om.as_str(), *oy)
            } else {
                (model.as_str(), *year)
            };
            let state = match rng.below(60) {
                0 => "broken",
                1 => "spare",
                _ => "in-service",
            };
            let month = 1 + rng.below(12);
            let _ = writeln!(
                devices,
                "{room};{code}-pc{host:04};02:00:{:02x}:{:02x}:{:02x}:{:02x};SN{code}{host:05};{m};{y}-{month:02}-15;;region;{state}",
                (n >> 8) & 0xff,
                n & 0xff,
                (host >> 8) & 0xff,
                host & 0xff,
            );
        }
    }
    Sources {
        site: Some(Source::new("site.toml", site)),
        models: Some(Source::new("models.toml", models)),
        devices: Some(Source::new("devices.csv", devices)),
        rooms,
        ..Sources::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::finding::Severity;
    use crate::domain::workspace::Workspace;

    #[test]
    fn a_generated_lycee_parses_cleanly() {
        let size = RegionSize {
            lycees: 1,
            rooms_per_lycee: 6,
            devices_per_room: 10,
        };
        let (ws, findings) = Workspace::parse(&lycee_sources(7, size, 42));
        let errors: Vec<String> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| f.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(ws.rooms.len(), 6);
        assert!(ws.devices.len() >= 30, "{}", ws.devices.len());
        // Deterministic.
        let again = lycee_sources(7, size, 42);
        assert_eq!(
            again.devices.unwrap().text,
            lycee_sources(7, size, 42).devices.unwrap().text
        );
    }
}
