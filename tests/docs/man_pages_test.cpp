// The man pages in docs/man stay true to the program: every command, option and positional that
// the built binary's --help prints is in dsr-connector(1) under its command's .SS; every section,
// key and default of config/dsr-connector.example.toml, and every credential with its NAME_file
// form, is in dsr-connector.toml(5) under its section's .SS; and man renders both without a
// warning.

#include "dsr/config/credential_names.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsr {
namespace {

constexpr std::string_view page_1 = DSR_SOURCE_DIR "/docs/man/dsr-connector.1";
constexpr std::string_view page_5 = DSR_SOURCE_DIR "/docs/man/dsr-connector.toml.5";
constexpr std::string_view example_config = DSR_SOURCE_DIR "/config/dsr-connector.example.toml";

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
}

// A roff line as a reader sees its words: font changes dropped, `\-` (how a page writes the
// hyphen-minus of an option or a path) as `-`, named quotes and spaces as themselves.
std::string plain(std::string line) {
  for (const char* font : {"\\fB", "\\fI", "\\fR", "\\fP"}) {
    replace_all(line, font, "");
  }
  replace_all(line, "\\-", "-");
  replace_all(line, "\\~", " ");
  replace_all(line, "\\(dq", "\"");
  replace_all(line, "\\e", "\\");
  return line;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
  }
  return lines;
}

std::string unquote(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') {
    return s.substr(1, s.size() - 2);
  }
  return s;
}

// A page cut at its headings: the plain text of each .SH and each .SS (a .SS part ends at the
// next .SS or .SH, a .SH part at the next .SH), and the tags of the .TP items under each .SS.
struct page {
  std::map<std::string, std::string> sections;           // .SH title -> text
  std::map<std::string, std::string> subsections;        // .SS title -> text
  std::map<std::string, std::vector<std::string>> tags;  // .SS title -> the line after each .TP
};

page read_page(const std::filesystem::path& path) {
  page p;
  std::string sh;
  std::optional<std::string> ss;
  bool tag_next = false;
  for (const auto& raw : lines_of(read_file(path))) {
    const auto line = plain(raw);
    if (line.starts_with(".SH ")) {
      sh = unquote(line.substr(4));
      ss.reset();
      p.sections[sh];
      continue;
    }
    if (line.starts_with(".SS ")) {
      ss = unquote(line.substr(4));
      p.subsections[*ss];
      continue;
    }
    if (tag_next && ss) {
      p.tags[*ss].push_back(line);
    }
    tag_next = line == ".TP";
    p.sections[sh] += line + "\n";
    if (ss) {
      p.subsections[*ss] += line + "\n";
    }
  }
  return p;
}

// Whether `word` occurs in `text` as a word of its own (an option, a name, a path): not as part
// of a longer one such as --json-lines or max_connections_per_client.
bool mentions(const std::string& text, const std::string& word) {
  const auto part_of_word = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
  };
  for (auto at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    const bool starts = at == 0 || !part_of_word(text[at - 1]);
    const auto end = at + word.size();
    const bool ends = end == text.size() || !part_of_word(text[end]);
    if (starts && ends) {
      return true;
    }
  }
  return false;
}

// What one --help prints: CLI11's "Options:", "Positionals:" and "Subcommands:" blocks, each
// entry starting at column 2 ("  -c,--config TEXT REQUIRED   ...").
struct help {
  std::vector<std::string> options;  // "-c", "--config", "--json"
  std::vector<std::string> positionals;
  std::vector<std::string> subcommands;
};

help parse_help(const std::string& output) {
  help h;
  std::vector<std::string>* block = nullptr;
  for (const auto& line : lines_of(output)) {
    if (line == "Options:") {
      block = &h.options;
    } else if (line == "Positionals:") {
      block = &h.positionals;
    } else if (line == "Subcommands:") {
      block = &h.subcommands;
    } else if (block != nullptr && line.size() > 2 && line.starts_with("  ") && line[2] != ' ') {
      const auto first = line.substr(2, line.find(' ', 2) - 2);
      if (block == &h.options) {
        std::istringstream names(first);
        for (std::string name; std::getline(names, name, ',');) {
          h.options.push_back(name);
        }
      } else {
        block->push_back(first);
      }
    } else if (line.empty() || !line.starts_with(" ")) {
      block = nullptr;
    }
  }
  return h;
}

struct command {
  std::vector<std::string> path;  // {} for the program, {"requests", "list"} for a subcommand
  help usage;

  std::string title() const {
    std::string t;
    for (const auto& word : path) {
      t += (t.empty() ? "" : " ") + word;
    }
    return t;
  }
};

// Runs `dsr-connector PATH... --help` for the program and, depth first, every subcommand it
// lists. Each run's output goes to a file in `scratch`.
void collect_commands(const test::temp_dir& scratch, const std::vector<std::string>& path,
                      std::vector<command>& out) {
  auto args = path;
  args.emplace_back("--help");
  const auto log = scratch.path() / ("help-" + std::to_string(out.size()) + ".log");
  test::process p(DSR_BINARY, args, {}, log);
  const auto code = p.wait_exit(std::chrono::seconds(30));
  command c{path, parse_help(p.output())};
  ASSERT_EQ(code, 0) << "dsr-connector " << c.title() << " --help:\n" << p.output();
  ASSERT_FALSE(c.usage.options.empty())
      << "no Options: block in the --help of '" << c.title() << "':\n"
      << p.output();
  out.push_back(c);
  for (const auto& sub : c.usage.subcommands) {
    auto next = path;
    next.push_back(sub);
    collect_commands(scratch, next, out);
    if (::testing::Test::HasFatalFailure()) {
      return;
    }
  }
}

TEST(ManPages, EveryCommandOptionAndPositionalOfHelpIsInSectionOne) {
  test::temp_dir scratch;
  std::vector<command> commands;
  collect_commands(scratch, {}, commands);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_GT(commands.size(), 1u) << "dsr-connector --help lists no subcommand";

  auto man = read_page(page_1);
  const auto& synopsis = man.sections["SYNOPSIS"];
  const auto& options = man.sections["OPTIONS"];
  for (const auto& c : commands) {
    if (c.path.empty()) {
      // The program's own options, --help included (every command takes it).
      for (const auto& o : c.usage.options) {
        EXPECT_TRUE(mentions(options, o)) << o << " is not in dsr-connector.1's OPTIONS";
      }
      continue;
    }
    const auto title = c.title();
    EXPECT_TRUE(mentions(synopsis, c.path.back()))
        << "'" << title << "' is not in dsr-connector.1's SYNOPSIS";
    const auto part = man.subsections.find(title);
    if (part == man.subsections.end()) {
      ADD_FAILURE() << "dsr-connector.1 has no '.SS \"" << title << "\"' for the subcommand";
      continue;
    }
    for (const auto& o : c.usage.options) {
      if (o == "-h" || o == "--help") {
        continue;  // documented once, under OPTIONS
      }
      EXPECT_TRUE(mentions(part->second, o))
          << o << " of '" << title << "' is not under its .SS in dsr-connector.1";
    }
    for (const auto& positional : c.usage.positionals) {
      EXPECT_TRUE(mentions(part->second, positional))
          << "the argument " << positional << " of '" << title
          << "' is not under its .SS in dsr-connector.1";
    }
  }
}

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
  return out;
}

TEST(ManPages, SectionOneNamesTheCredentialEnvironmentExitCodesAndSignals) {
  auto man = read_page(page_1);
  const auto& environment = man.sections["ENVIRONMENT"];
  EXPECT_TRUE(mentions(environment, "CREDENTIALS_DIRECTORY"));
  for (const auto c : all_credentials) {
    const auto variable = "DSR_CONNECTOR_" + upper(name(c));
    EXPECT_TRUE(mentions(environment, variable)) << variable << " is not in ENVIRONMENT";
  }
  const auto& exit_status = man.sections["EXIT STATUS"];
  for (const char* code : {"0", "1", "2"}) {
    EXPECT_NE(exit_status.find(std::string(".TP\n.B ") + code + "\n"), std::string::npos)
        << "exit status " << code << " is not an item of EXIT STATUS";
  }
  const auto& signals = man.sections["SIGNALS"];
  for (const char* sig : {"SIGTERM", "SIGINT", "SIGHUP"}) {
    EXPECT_TRUE(mentions(signals, sig)) << sig << " is not in SIGNALS";
  }
  EXPECT_FALSE(man.sections["FILES"].empty());
}

// The key of an item's tag ("listen = \"127.0.0.1:8080\"" -> "listen") and, for the credentials'
// "NAME, NAME_file", each name.
std::vector<std::string> tag_keys(const std::string& tag) {
  std::vector<std::string> keys;
  std::istringstream names(tag.substr(0, tag.find(" = ")));
  for (std::string key; std::getline(names, key, ',');) {
    key.erase(0, key.find_first_not_of(' '));
    keys.push_back(key);
  }
  return keys;
}

template <class Node>
std::string as_toml(const toml::node_view<Node>& value) {
  std::ostringstream s;
  s << value;
  return s.str();
}

TEST(ManPages, EverySectionKeyAndDefaultOfTheExampleIsInSectionFive) {
  const auto example = toml::parse_file(example_config);
  const auto man = read_page(page_5);
  std::size_t keys = 0;
  for (const auto& [section_key, section] : example) {
    const std::string section_name(section_key.str());
    const auto title = "[" + section_name + "]";
    const auto tags = man.tags.find(title);
    if (!man.subsections.contains(title) || tags == man.tags.end()) {
      ADD_FAILURE() << "dsr-connector.toml.5 has no '.SS " << title << "' with its keys";
      continue;
    }
    ASSERT_TRUE(section.is_table()) << section_name;
    for (const auto& [key, value] : *section.as_table()) {
      ++keys;
      const std::string k(key.str());
      const auto item = std::find_if(tags->second.begin(), tags->second.end(), [&](const auto& t) {
        const auto names = tag_keys(t);
        return std::find(names.begin(), names.end(), k) != names.end();
      });
      if (item == tags->second.end()) {
        ADD_FAILURE() << title << " " << k << " has no item (.TP, then \\fB" << k
                      << "\\fR = default) under its .SS in dsr-connector.toml.5";
        continue;
      }
      if (section_name == "credentials") {
        continue;  // secrets have no default
      }
      // The default as the page writes it, read as TOML: the example's value.
      try {
        const auto documented = toml::parse(*item);
        EXPECT_EQ(as_toml(documented[k]), as_toml(toml::node_view<const toml::node>(value)))
            << title << " " << k << ": the default in dsr-connector.toml.5 (" << *item
            << ") is not the example's";
      } catch (const toml::parse_error& e) {
        ADD_FAILURE() << title << " " << k << ": the item's tag is not `key = default` in TOML ("
                      << *item << "): " << e.description();
      }
    }
  }
  EXPECT_GT(keys, 10u) << "the example configuration was not read";
}

TEST(ManPages, EveryCredentialAndItsFileFormIsInSectionFive) {
  const auto man = read_page(page_5);
  const auto tags = man.tags.find("[credentials]");
  ASSERT_NE(tags, man.tags.end()) << "dsr-connector.toml.5 has no '.SS [credentials]'";
  for (const auto c : all_credentials) {
    const std::string n(name(c));
    const auto tag = fmt::format("{}, {}_file", n, n);
    const bool documented =
        std::find(tags->second.begin(), tags->second.end(), tag) != tags->second.end();
    EXPECT_TRUE(documented) << "no item \\fB" << n << "\\fR, \\fB" << n
                            << "_file\\fR under [credentials] in dsr-connector.toml.5";
  }
}

TEST(ManPages, SectionFiveDocumentsNoKeyTheExampleLacks) {
  const auto example = toml::parse_file(example_config);
  const auto man = read_page(page_5);
  for (const auto& [title, tags] : man.tags) {
    if (title == "[credentials]" || !title.starts_with('[')) {
      continue;
    }
    const auto* section = example[title.substr(1, title.size() - 2)].as_table();
    ASSERT_NE(section, nullptr) << "dsr-connector.toml.5 documents " << title
                                << ", which config/dsr-connector.example.toml does not have";
    for (const auto& tag : tags) {
      for (const auto& key : tag_keys(tag)) {
        EXPECT_TRUE(section->contains(key))
            << "dsr-connector.toml.5 documents " << title << " " << key
            << ", which config/dsr-connector.example.toml does not have";
      }
    }
  }
}

struct rendered {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// `man --warnings -l PAGE` at 80 columns, its standard output and error kept apart in `scratch`.
rendered render(const test::temp_dir& scratch, const std::filesystem::path& man_page) {
  const auto out = scratch.path() / "out";
  const auto err = scratch.path() / "err";
  // The user's man settings (MANOPT, a pager, a locale man cannot set) must not change the
  // result, nor a container that refuses man-db's seccomp sandbox.
  const std::string script =
      "unset MANOPT MANROFFOPT; "
      "export MANWIDTH=80 MANPAGER=cat LC_ALL=C.UTF-8 MAN_DISABLE_SECCOMP=1; "
      "exec man --warnings -P cat -l \"$1\" >\"$2\" 2>\"$3\"";
  test::process p("/bin/sh", {"-c", script, "sh", man_page.string(), out.string(), err.string()},
                  {}, scratch.path() / "sh.log");
  rendered r;
  r.exit_code = p.wait_exit(std::chrono::seconds(60)).value_or(-1);
  r.out = read_file(out);
  r.err = read_file(err) + p.output();
  return r;
}

TEST(ManPages, BothRenderWithoutAWarning) {
  for (const auto& [man_page, name_line] :
       {std::pair{page_1, "dsr-connector - "}, std::pair{page_5, "dsr-connector.toml - "}}) {
    test::temp_dir scratch;
    const auto r = render(scratch, man_page);
    EXPECT_EQ(r.exit_code, 0) << man_page << ":\n" << r.err;
    EXPECT_EQ(r.err, "") << man_page << " (man-db and groff-base come with scripts/install-deps)";
    EXPECT_NE(r.out.find(name_line), std::string::npos) << man_page << " rendered:\n" << r.out;
  }
}

}  // namespace
}  // namespace dsr
